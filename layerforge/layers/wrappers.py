"""Wrappers: layers that apply another layer type, declared inline under `layer:`."""
from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, Field, ValidationError, WithJsonSchema

from ..errors import ShapeError
from ..text import suggest
from .common import fmt_shape
from .registry import LayerSpec, Shape, get_layer_type, register

if TYPE_CHECKING:
    from torch import nn


def _inner_layer(v: Any) -> LayerSpec:
    """A mapping `{type: …, …}` → that type's validated LayerSpec (one input, no time steps)."""
    if isinstance(v, LayerSpec):
        return v
    if not isinstance(v, dict) or not isinstance(v.get("type"), str):
        raise ValueError(f"layer must be a mapping with a 'type', e.g. {{type: dense, units: 8}}, got {v!r}")
    try:
        cls = get_layer_type(v["type"])
    except KeyError as e:
        raise ValueError(e.args[0]) from None
    if cls.max_inputs != 1 or cls.time_aware:
        raise ValueError(f"time_distributed wraps a one-input layer without time steps, not '{cls.type_name}'")
    if "inputs" in v:
        raise ValueError("the wrapped layer reads the wrapper's input: give 'inputs' to time_distributed instead")
    try:
        return cls.model_validate(v)
    except ValidationError as e:
        raise ValueError(f"in the wrapped {v['type']}: " + "; ".join(_issue(err, cls) for err in e.errors())) from None


def _issue(err: Any, cls: type[LayerSpec]) -> str:
    """One pydantic error of the wrapped layer as the spec's own messages word it."""
    key = ".".join(map(str, err["loc"]))
    if err["type"] == "extra_forbidden":
        hint = suggest(key, cls.model_fields)
        return f"unknown key '{key}'" + (f" ({hint})" if hint else "")
    if err["type"] == "missing":
        return f"missing required key '{key}'"
    return f"{key}: {err['msg']}" if key else err["msg"]


InnerLayer = Annotated[
    Any, BeforeValidator(_inner_layer, json_schema_input_type=dict[str, Any]),
    WithJsonSchema({"type": "object", "required": ["type"], "description": "a layer, e.g. {type: dense, units: 8}"}),
]


@cache
def _time_distributed_class() -> type:
    import torch
    from torch import nn

    class TimeDistributed(nn.Module):
        """Applies `layer` to every time step by folding the steps into the batch."""

        def __init__(self, layer: nn.Module) -> None:
            super().__init__()
            self.layer = layer

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, *S)
            b, t = x.shape[:2]
            y = self.layer(x.reshape(b * t, *x.shape[2:]))  # (B·T, *S_out)
            return y.reshape(b, t, *y.shape[1:])  # (B, T, *S_out)

    return TimeDistributed


@register("time_distributed", family="wrappers")
class TimeDistributed(LayerSpec):
    """Applies one layer (the same weights) independently to every step of a sequence.

    **Formula.** y[t] = layer(x[t]) for every t < T along the first per-sample axis; the wrapped layer's
    weights are shared across steps.

    **Shapes.** input (T, *S) → output (T, *S_out), S_out = the wrapped layer's output for input S; e.g. a
    conv2d over (T, C, H, W) video frames, or a dense over (T, F) (the same as dense alone, which already
    maps the last axis). Parameters: the wrapped layer's.

    **FLOPs** (per sample): T × the wrapped layer's FLOPs for one step.

    **Equivalents.** PyTorch: reshape (B, T, …) to (B·T, …), apply the module, reshape back; Keras
    `layers.TimeDistributed(layer)`.
    """

    masking = "keep"  # per step and per element: a padding mask passes through
    wraps = "layer"  # the inner layer's weight options (initializers, regularizers, trainable) apply

    example = "- {type: time_distributed, layer: {type: conv2d, filters: 4, kernel_size: 3}}"
    example_inputs = [(3, 2, 6, 6)]

    layer: InnerLayer = Field(description="The layer applied at every step, written as a layer item without "
                              "name/inputs, e.g. {type: dense, units: 8}.")

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (s,) = in_shapes
        if len(s) < 2:
            raise ShapeError(f"time_distributed needs (T, *step_shape) with at least 2 axes, got {fmt_shape(s)}",
                             hint="the first axis is time: reshape the input to (T, …) first")
        try:
            return (s[0], *self.layer.output_shape([s[1:]]))
        except ShapeError as e:
            raise ShapeError(f"the wrapped {self.layer.type} at each of the {s[0]} steps: {e.message}",
                             hint=e.hint) from None

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        from .weights import finish

        return _time_distributed_class()(finish(self.layer, self.layer.build([in_shapes[0][1:]])))

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int | None:
        f = self.layer.flops([in_shapes[0][1:]], out_shape[1:])
        return None if f is None else in_shapes[0][0] * f

    def backward_flops(self, in_shapes: list[Shape], out_shape: Shape) -> int | None:
        f = self.layer.backward_flops([in_shapes[0][1:]], out_shape[1:])
        return None if f is None else in_shapes[0][0] * f

    def id_range(self, input_index: int = 0) -> tuple[int, int] | None:
        return self.layer.id_range(input_index)

    def output_activation(self) -> str | None:
        return self.layer.output_activation()
