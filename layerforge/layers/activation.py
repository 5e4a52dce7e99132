"""A standalone activation layer (the same functions `activation:` applies inside dense/conv layers)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from ..errors import ShapeError
from .common import ACTIVATION_FLOPS, ActivationName, activation_flops, fmt_shape, make_activation, numel
from .registry import LayerSpec, Shape, register

if TYPE_CHECKING:
    from torch import nn

_AXIS_ACTIVATIONS = ("softmax", "log_softmax")


@register("activation", family="core")
class Activation(LayerSpec):
    """Applies an activation function elementwise (softmax / log_softmax: over one axis).

    **Formula.** y = f(x) elementwise, e.g. relu(x) = max(x, 0), sigmoid(x) = 1 / (1 + e^{−x}),
    gelu(x) = x·Φ(x). softmax over axis a: y_i = e^{x_i} / Σ_j e^{x_j} (j along a); log_softmax = log of it.

    **Shapes.** any shape → the same shape. No parameters.

    **FLOPs** (per sample): ACTIVATION_FLOPS[activation] per element: 0 for linear, 1 for the elementwise
    functions, 3 for softmax / log_softmax (exp, sum, divide).

    **Equivalents.** PyTorch `nn.ReLU()`, `nn.Softmax(dim)`, …; Keras `layers.Activation(activation)`,
    `layers.Softmax(axis)`.
    """

    example = "- {type: activation, activation: softmax}"
    example_inputs = [(4, 10)]

    def mask_mode(self, in_shapes: list[Shape]) -> str:
        """Elementwise, or softmax over the features, keeps a padding mask; a softmax over time would mix padding in."""
        last = self.activation not in _AXIS_ACTIVATIONS or self.axis % len(in_shapes[0]) == len(in_shapes[0]) - 1
        return "keep" if last else "refuse"

    activation: ActivationName = Field(description="Activation function: " + ", ".join(ACTIVATION_FLOPS) + ".")
    axis: int = Field(default=-1, description="The axis softmax/log_softmax normalise over, counted over the per-sample "
                      "axes (0 = first after the batch); only allowed with those two.")

    @model_validator(mode="after")
    def _axis_only_for_softmax(self):
        if self.axis != -1 and self.activation not in _AXIS_ACTIVATIONS:
            raise ValueError(
                f"axis only applies to {' and '.join(_AXIS_ACTIVATIONS)}, got activation '{self.activation}' "
                f"with axis {self.axis}"
            )
        return self

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (s,) = in_shapes
        if not -len(s) <= self.axis < len(s):
            raise ShapeError(f"axis {self.axis} is out of range for an input of shape {fmt_shape(s)}",
                             hint=f"use an axis in [{-len(s)}, {len(s) - 1}] (the batch axis is not counted)")
        return tuple(s)

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        from torch import nn

        if self.activation in _AXIS_ACTIVATIONS:
            dim = self.axis if self.axis < 0 else self.axis + 1  # + 1: the batch axis
            return (nn.Softmax if self.activation == "softmax" else nn.LogSoftmax)(dim=dim)
        return make_activation(self.activation)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return activation_flops(self.activation, numel(out_shape))

