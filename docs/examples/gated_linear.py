"""A layerforge plugin: a gated linear unit, y = (W_a x + b_a) ⊙ σ(W_b x + b_b).

Use it with `layerforge inspect docs/examples/plugin_model.yaml` (the spec lists this file under
`plugins:`) or with `--plugins docs/examples/gated_linear.py` on any command.
"""
from __future__ import annotations

import torch
from pydantic import Field, PositiveInt
from torch import nn

from layerforge.errors import ShapeError
from layerforge.layers import LayerSpec, register


class _GLU(nn.Module):
    def __init__(self, in_features: int, units: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_features, 2 * units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.proj(x).chunk(2, dim=-1)  # (..., units) each
        return a * torch.sigmoid(b)


@register("gated_linear", family="plugin")
class GatedLinear(LayerSpec):
    """Gated linear unit: y = (W_a·x + b_a) ⊙ σ(W_b·x + b_b) on the last axis.

    **Formula.** Two affine maps of x; one is squashed by a sigmoid and gates the other.

    **Shapes.** (…, F) → (…, units).

    **FLOPs** per position: 2·F·2·units (matmul) + 2·units (bias) + units (sigmoid) + units (product).

    **Equivalents.** PyTorch `nn.Linear(F, 2*units)` + `nn.functional.glu`; Keras: no built-in.
    """

    example = "- {type: gated_linear, units: 16}"
    example_inputs = [(10, 8)]

    units: PositiveInt = Field(description="Size of the output's last axis.")

    def output_shape(self, in_shapes):
        (s,) = in_shapes
        if not s:
            raise ShapeError(f"needs at least one axis, got {s}")
        return (*s[:-1], self.units)

    def build(self, in_shapes):
        return _GLU(in_shapes[0][-1], self.units)

    def flops(self, in_shapes, out_shape):
        s = in_shapes[0]
        positions = 1
        for d in s[:-1]:
            positions *= d
        return positions * (4 * s[-1] * self.units + 4 * self.units)
