"""The layer registry: one decorated class per layer type, declaring everything about itself.

A layer type is a pydantic model of its parameters (unknown keys forbidden) with four methods:

- ``output_shape(in_shapes)`` — pure shape rule, used to validate a spec before any weight exists;
  raises :class:`~layerforge.errors.ShapeError` with the shape it needs.
- ``build(in_shapes)`` — an ``nn.Module`` whose ``forward`` takes one tensor per input.
- ``flops(in_shapes, out_shape)`` — exact forward FLOPs for ONE sample (a multiply-add counts 2);
  see docs/flops.md for the conventions. ``None`` means "cannot count" and is reported as uncounted.
- ``backward_flops(in_shapes, out_shape)`` — defaults to 2 × forward (grad w.r.t. input and weights).
- ``info(in_shapes, out_shape)`` — optional extra facts for summary rows (default: none).

Shapes exclude the batch dimension and are channels-first: an image is ``(C, H, W)``, a sequence
``(T, F)``. The class docstring is the layer's documentation page (formula, parameters, shapes,
PyTorch/Keras equivalents, YAML example); ``summary`` is its one-line description.
"""
from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from torch import nn

Shape = tuple[int, ...]

_REGISTRY: dict[str, type["LayerSpec"]] = {}


class LayerSpec(BaseModel):
    """Base of every layer type. Subclasses add their parameters as pydantic fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    name: str | None = Field(default=None, description="Unique layer name (default: the type and a counter, e.g. dense_1).")
    inputs: list[str] | None = Field(
        default=None, description="Names of the layers or model inputs this layer reads; default: the previous layer."
    )

    # Class-level facts about the type, set by @register and by subclasses.
    type_name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    family: ClassVar[str] = ""
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int] = 1
    example: ClassVar[str] = ""  # one YAML list item, e.g. "- {type: dense, units: 64}", shown in the docs
    integer_input: ClassVar[bool] = False  # True when the layer reads integer ids (embedding)
    example_inputs: ClassVar[list[Shape]] = []  # input shape(s) the example reads (used by the contract tests)

    # --- the contract -------------------------------------------------------------------------
    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        raise NotImplementedError

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        raise NotImplementedError

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int | None:
        return None

    def backward_flops(self, in_shapes: list[Shape], out_shape: Shape) -> int | None:
        f = self.flops(in_shapes, out_shape)
        return None if f is None else 2 * f

    def info(self, in_shapes: list[Shape], out_shape: Shape) -> dict[str, Any]:
        """Extra per-sample facts a summary row shows beside parameters and FLOPs (name → number or text),
        e.g. sparse attention's attended and computed (query, key) pairs. Most types have none."""
        return {}

    # --- helpers ------------------------------------------------------------------------------
    def label(self) -> str:
        return f"{self.type} '{self.name}'" if self.name else self.type

    @classmethod
    def doc(cls) -> str:
        import inspect

        return inspect.cleandoc(cls.__doc__ or "")


def register(name: str, *, family: str = "custom", summary: str | None = None):
    """Class decorator: register a layer type under ``name`` (lower-case, unique)."""

    def deco(cls: type[LayerSpec]) -> type[LayerSpec]:
        from ..errors import PluginError

        if not (isinstance(cls, type) and issubclass(cls, LayerSpec)):
            raise PluginError(f"@register('{name}') must decorate a LayerSpec subclass, got {cls!r}")
        if name in _REGISTRY and (_REGISTRY[name].__module__, _REGISTRY[name].__qualname__) != (cls.__module__, cls.__qualname__):
            raise PluginError(
                f"layer type '{name}' is registered twice ({_REGISTRY[name].__module__} and {cls.__module__})",
                hint="choose another name for your layer type",
            )
        cls.type_name = name
        cls.family = family
        first = (cls.__doc__ or "").strip().splitlines()
        cls.summary = summary or (first[0].strip() if first else name)
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_builtins() -> None:
    from . import families  # noqa: F401  (imports every built-in family module)


def registry() -> dict[str, type[LayerSpec]]:
    """All registered layer types by name (built-ins are loaded on first use)."""
    _load_builtins()
    return dict(sorted(_REGISTRY.items()))


def suggest(word: str, choices: list[str] | Any, n: int = 3) -> str | None:
    """A "did you mean" hint for ``word`` among ``choices``, or None."""
    close = difflib.get_close_matches(str(word), list(choices), n=n, cutoff=0.6)
    if not close:
        return None
    return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"


def get_layer_type(name: str) -> type[LayerSpec]:
    """Look up a type by name; raises KeyError with a did-you-mean message."""
    reg = registry()
    if name in reg:
        return reg[name]
    raise KeyError(name)
