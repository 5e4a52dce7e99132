"""Merging several inputs into one: elementwise sum (add) and concatenation (concat)."""
from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from pydantic import Field

from ..errors import ShapeError
from .common import fmt_shape, numel
from .registry import LayerSpec, Shape, register

if TYPE_CHECKING:
    from torch import nn


def _listing(shapes: list[Shape]) -> str:
    return ", ".join(fmt_shape(s) for s in shapes)


@cache
def _merge_classes() -> tuple[type, type]:
    import torch
    from torch import nn

    class Add(nn.Module):
        """Elementwise sum of its inputs."""

        def forward(self, *xs: torch.Tensor) -> torch.Tensor:  # each (B, *S)
            out = xs[0]
            for x in xs[1:]:
                out = out + x
            return out  # (B, *S)

    class Concat(nn.Module):
        """Concatenation along one axis (given over the per-sample axes)."""

        def __init__(self, axis: int) -> None:
            super().__init__()
            self.dim = axis if axis < 0 else axis + 1  # + 1: the batch axis

        def forward(self, *xs: torch.Tensor) -> torch.Tensor:
            return torch.cat(xs, dim=self.dim)

        def extra_repr(self) -> str:
            return f"dim={self.dim}"

    return Add, Concat


@register("add", family="merge")
class Add(LayerSpec):
    """Elementwise sum of two or more inputs of identical shape (e.g. a residual connection).

    **Formula.** y = x_1 + x_2 + … + x_n, over the layers listed in `inputs: [a, b, …]` (2 or more).

    **Shapes.** n inputs of the same shape S → S. No broadcasting: shapes must match exactly. No parameters.

    **FLOPs** (per sample): (n − 1)·numel(S) additions.

    **Equivalents.** PyTorch `x1 + x2 + …`; Keras `layers.Add()([x1, x2, …])`.
    """

    example = "- {type: add, inputs: [a, b]}"
    example_inputs = [(4, 6), (4, 6)]
    masking = "keep"  # elementwise: the padding masks pass through (their AND)
    min_inputs = 2
    max_inputs = 99

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        if len({tuple(s) for s in in_shapes}) != 1:
            raise ShapeError(f"add needs inputs of identical shape, got {_listing(in_shapes)}",
                             hint="project or reshape an input (e.g. a dense layer) so every shape matches")
        return tuple(in_shapes[0])

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        return _merge_classes()[0]()

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return (len(in_shapes) - 1) * numel(out_shape)


@register("concat", family="merge")
class Concat(LayerSpec):
    """Concatenates two or more inputs along one axis; every other axis must match.

    **Formula.** y = [x_1 ‖ x_2 ‖ … ‖ x_n] along `axis`.

    **Shapes.** inputs of equal rank that agree on every axis but `axis` → that axis' sizes summed; e.g.
    (T, 8) and (T, 4) with axis −1 → (T, 12). No parameters.

    **FLOPs** 0 (a copy).

    **Equivalents.** PyTorch `torch.cat([x1, x2, …], dim=axis + 1)` (+1 for the batch axis when axis ≥ 0);
    Keras `layers.Concatenate(axis=axis + 1)([x1, x2, …])` (Keras counts the batch axis too).
    """

    example = "- {type: concat, axis: -1, inputs: [a, b]}"
    example_inputs = [(4, 6), (4, 3)]

    def mask_mode(self, in_shapes: list[Shape]) -> str:
        """Joining features step by step keeps padding masks; joining along time would misplace them."""
        return "keep" if self.axis % len(in_shapes[0]) == len(in_shapes[0]) - 1 else "refuse"
    min_inputs = 2
    max_inputs = 99

    axis: int = Field(default=-1, description="Axis to join, over the per-sample axes (0 = first after batch, -1 = last); "
                      "for channels-first images (C, H, W), 0 joins channels.")

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        rank = len(in_shapes[0])
        if any(len(s) != rank for s in in_shapes):
            raise ShapeError(f"concat needs inputs of the same rank, got {_listing(in_shapes)}",
                             hint="reshape or flatten the inputs to the same number of axes")
        if not -rank <= self.axis < rank:
            raise ShapeError(f"axis {self.axis} is out of range for inputs of rank {rank} ({_listing(in_shapes)})",
                             hint=f"use an axis in [{-rank}, {rank - 1}] (the batch axis is not counted)")
        ax = self.axis % rank
        rest = {tuple(d for i, d in enumerate(s) if i != ax) for s in in_shapes}
        if len(rest) != 1:
            raise ShapeError(f"concat along axis {self.axis} needs every other axis to match, got {_listing(in_shapes)}",
                             hint="reshape the inputs, or concatenate along the axis where they differ")
        s0 = in_shapes[0]
        return (*s0[:ax], sum(s[ax] for s in in_shapes), *s0[ax + 1:])

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        return _merge_classes()[1](self.axis)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return 0
