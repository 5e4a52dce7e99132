"""Fully connected layers."""
from __future__ import annotations

from pydantic import Field, PositiveInt

from ..errors import ShapeError
from .common import ActivationName, activation_flops, make_activation, numel
from .registry import Shape, register
from .weights import KernelOptions


@register("dense", family="core")
class Dense(KernelOptions):
    """Fully connected layer: y = f(W·x + b), applied to the last axis of any rank.

    **Formula.** For input x ∈ ℝ^F (the last axis), weights W ∈ ℝ^{units×F}, bias b ∈ ℝ^{units}:
    y = f(W·x + b). Leading axes (time steps, channels) are kept: (…, F) → (…, units).

    **Shapes.** input (…, F) → output (…, units). Parameters: F·units (+ units with bias).

    **FLOPs** (per sample): 2·F·units per position (multiply-add = 2), + units for the bias,
    + the activation's cost, times the number of leading positions.

    **Equivalents.** PyTorch `nn.Linear(F, units)` + activation; Keras `layers.Dense(units, activation)`.
    """

    example = "- {type: dense, units: 64, activation: relu}"
    example_inputs = [(10, 32)]
    masking = "keep"  # per step: a padding mask passes through
    matrix_roles = ("kernel",)  # a 2-D kernel: the identity initializer applies

    units: PositiveInt = Field(description="Size of the output's last axis.")
    activation: ActivationName = Field(default="linear", description="Activation f applied after the affine map, e.g. "
                                       "relu, tanh, gelu (the activation layer lists every name).")
    use_bias: bool = Field(default=True, description="Add a learned bias.")

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (s,) = in_shapes
        if len(s) < 1:
            raise ShapeError(f"needs an input with at least one axis, got {s}")
        return (*s[:-1], self.units)

    def build(self, in_shapes: list[Shape]):
        from torch import nn

        lin = nn.Linear(in_shapes[0][-1], self.units, bias=self.use_bias)
        if self.activation == "linear":
            return lin
        return nn.Sequential(lin, make_activation(self.activation))

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        s = in_shapes[0]
        positions = numel(s[:-1])
        per = 2 * s[-1] * self.units + (self.units if self.use_bias else 0)
        return positions * per + activation_flops(self.activation, numel(out_shape))
