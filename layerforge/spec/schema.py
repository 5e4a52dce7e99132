"""The spec's top-level schema (pydantic). Layers are validated one by one against the registry
(see :mod:`layerforge.spec.validate`), so each error names its layer and a plugin's types work alike.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from ..limits import MAX_SEED, Size
from .sections import DataSpec, ProfileSpec, SearchSpec, TrainSpec

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RUN_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+=@,-]{0,99}$")


class InitFromSpec(BaseModel):
    """``model.init_from``: start from a trained run's weights (docs/transfer.md)."""

    model_config = ConfigDict(extra="forbid")

    run: str = Field(description="The trained run's directory (as 'layerforge train' printed it; relative to the "
                     "current directory, like --resume).")
    layers: dict[str, str] = Field(default_factory=dict, description="Layers loaded under another name: "
                                   "{new_name: source_name}; every other layer loads from the source layer of its name.")
    strict: bool = Field(default=False, description="true: every layer with weights must load (a missing or "
                         "shape-mismatched one is an error); false: such layers keep their fresh weights, reported.")
    checkpoint: Literal["best", "last"] = Field(default="best", description="Which checkpoint of the run: best "
                                                "(falls back to last when there is none) or last.")


class ModelSpec(BaseModel):
    """The ``model:`` section: input shape(s), the layer list, and which layers are outputs."""

    model_config = ConfigDict(extra="forbid")

    input_shape: list[Size] | dict[str, list[Size]] = Field(
        description="Shape of ONE sample (no batch axis), channels first; a mapping name → shape for several inputs."
    )
    layers: list[Any] = Field(min_length=1, description="The layers, in order; each a mapping with 'type', or "
                              "{block: NAME, repeat: N} for a block of model.blocks.")
    blocks: dict[str, Any] | None = Field(
        default=None, description="Reusable groups of layers: NAME: [layers] or NAME: {repeat: N, layers: [...]} "
                                  "(docs/spec.md#blocks)."
    )
    outputs: str | list[str] | None = Field(
        default=None, description="Layer name(s) whose outputs are the model's outputs (default: the last layer)."
    )
    init_from: InitFromSpec | None = Field(
        default=None, description="Start training from a trained run's weights, layer by layer (transfer learning; "
                                  "docs/transfer.md). A resumed run continues from its own checkpoint instead."
    )

    @field_validator("input_shape")
    @classmethod
    def _names(cls, v: Any) -> Any:
        if isinstance(v, dict):
            if not v:
                raise ValueError("needs at least one named input")
            for k in v:
                if not NAME_RE.match(str(k)):
                    raise ValueError(f"input name '{k}' must be letters, digits and '_' (not starting with a digit)")
        elif len(v) == 0:
            raise ValueError("must have at least one axis, e.g. [784] or [1, 28, 28]")
        return v

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Model inputs by name; a single unnamed input is called ``input``."""
        if isinstance(self.input_shape, dict):
            return {k: tuple(v) for k, v in self.input_shape.items()}
        return {"input": tuple(self.input_shape)}

    def output_names(self) -> list[str] | None:
        if self.outputs is None:
            return None
        return [self.outputs] if isinstance(self.outputs, str) else list(self.outputs)


class PluginRef(BaseModel):
    """A plugin file pinned to its content: a run directory's spec.yaml records each plugin this way, and
    a file whose sha256 has changed since is not imported unless the user trusts it (``--trust-plugins``)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="The plugin file (relative to this spec, or absolute).")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$",
                               description="sha256 of the file's content when it was recorded.")


class Spec(BaseModel):
    """A whole layerforge spec. ``model.layers`` holds validated LayerSpec objects after validation.

    Made by the front door (:func:`layerforge.build.load`), which also remembers where the spec came
    from: its file, the mapping it was validated from, the file positions, the plugin files loaded for
    it and the folder its relative paths start from."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="model", description="Name of the experiment: the run directory's folder under "
                      "train.out (letters, digits and _ . + = @ , -; no path separators; at most 100 characters).")
    seed: int = Field(default=0, ge=0, le=MAX_SEED, description="Random seed for weights, data shuffling and dropout "
                      "(0 to 2**63 - 1).")
    plugins: list[str | PluginRef] = Field(
        default_factory=list, description="Python files (relative to this spec) that register layer types; "
        "an entry may pin the content: {path: my_layers.py, sha256: ...}.")
    model: ModelSpec
    data: DataSpec | None = None
    train: TrainSpec = Field(default_factory=TrainSpec)
    profile: ProfileSpec = Field(default_factory=ProfileSpec)
    search: SearchSpec | None = Field(default=None, description="What `layerforge search` tries (docs/search.md); "
                                      "ignored by train.")

    @field_validator("name")
    @classmethod
    def _folder_name(cls, v: str) -> str:
        """The name becomes a folder under train.out: never a path (``/tmp/x``, ``../x``), never hidden."""
        if not RUN_NAME_RE.match(v) or v.strip(".") == "":
            shown = v if len(v) <= 40 else v[:37] + "..."
            raise ValueError(f"'{shown}' cannot be a run name: it names the run's folder under train.out, so it must "
                             "be 1 to 100 letters, digits or _ . + = @ , - (no '/', no spaces), not starting with '.' "
                             "or '-'")
        return v

    _source: str | None = PrivateAttr(default=None)
    _raw: Any = PrivateAttr(default=None)
    _marks: Any = PrivateAttr(default=None)
    _plugin_files: list[Any] = PrivateAttr(default_factory=list)
    _base_dir: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> str | None:
        """The file the spec was loaded from (None when built from a dict)."""
        return self._source

    @property
    def raw(self) -> Any:
        """The mapping after overrides, before validation: what a run directory saves as spec.yaml."""
        return self._raw

    @property
    def marks(self) -> Any:
        """File positions of the mapping's keys (a :class:`~layerforge.spec.loader.Marks`), for located errors."""
        return self._marks

    @property
    def plugin_files(self) -> list[Any]:
        """The plugin files loaded for this spec (``--plugins`` and ``plugins:``), each with its sha256."""
        return list(self._plugin_files)

    @property
    def base_dir(self) -> Path:
        """The folder that relative paths in the spec (data files, plugins) start from: the spec file's
        folder (a run directory's spec: the original config's folder), else the current directory."""
        if self._base_dir is not None:
            return self._base_dir
        if self._source and not self._source.startswith("<"):
            return Path(self._source).resolve().parent
        return Path.cwd()
