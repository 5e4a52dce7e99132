"""The spec's top-level schema (pydantic). Layers are validated one by one against the registry
(see :mod:`layerforge.spec.validate`), so each error names its layer and a plugin's types work alike.
"""
from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, PrivateAttr, field_validator

from .sections import DataSpec, ProfileSpec, TrainSpec

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ModelSpec(BaseModel):
    """The ``model:`` section: input shape(s), the layer list, and which layers are outputs."""

    model_config = ConfigDict(extra="forbid")

    input_shape: list[PositiveInt] | dict[str, list[PositiveInt]] = Field(
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


class Spec(BaseModel):
    """A whole layerforge spec. ``model.layers`` holds validated LayerSpec objects after validation."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="model", description="Name of the experiment (used for run directories).")
    seed: int = Field(default=0, description="Random seed for weights, data shuffling and dropout.")
    plugins: list[str] = Field(default_factory=list, description="Python files (relative to this spec) that register layer types.")
    model: ModelSpec
    data: DataSpec | None = None
    train: TrainSpec = Field(default_factory=TrainSpec)
    profile: ProfileSpec = Field(default_factory=ProfileSpec)

    _source: str | None = PrivateAttr(default=None)
    _raw: Any = PrivateAttr(default=None)

    @property
    def source(self) -> str | None:
        """The file the spec was loaded from (None when built from a dict)."""
        return self._source

    @property
    def raw(self) -> Any:
        """The mapping after overrides, before validation: what a run directory saves as spec.yaml."""
        return self._raw
