"""Merging several inputs into one: elementwise (add, multiply, subtract, average, maximum, minimum),
concatenation (concat) and the batched dot product (dot)."""
from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Annotated, ClassVar

from pydantic import BeforeValidator, Field

from ..errors import ShapeError
from .common import _pair, fmt_shape, numel
from .registry import LayerSpec, Shape, register

if TYPE_CHECKING:
    from torch import nn


def _listing(shapes: list[Shape]) -> str:
    return ", ".join(fmt_shape(s) for s in shapes)


@cache
def _merge_classes() -> tuple[type, type]:
    import torch
    from torch import nn

    class Elementwise(nn.Module):
        """Elementwise sum / product / difference / mean / max / min of its inputs."""

        def __init__(self, op: str) -> None:
            super().__init__()
            self.op = op

        def forward(self, *xs: torch.Tensor) -> torch.Tensor:  # each (B, *S)
            if self.op == "subtract":
                return xs[0] - xs[1]
            out = xs[0]
            for x in xs[1:]:
                if self.op in ("add", "average"):
                    out = out + x
                elif self.op == "multiply":
                    out = out * x
                else:
                    out = torch.maximum(out, x) if self.op == "maximum" else torch.minimum(out, x)
            return out / len(xs) if self.op == "average" else out  # (B, *S)

        def extra_repr(self) -> str:
            return self.op

    class Concat(nn.Module):
        """Concatenation along one axis (given over the per-sample axes)."""

        def __init__(self, axis: int) -> None:
            super().__init__()
            self.dim = axis if axis < 0 else axis + 1  # + 1: the batch axis

        def forward(self, *xs: torch.Tensor) -> torch.Tensor:
            return torch.cat(xs, dim=self.dim)

        def extra_repr(self) -> str:
            return f"dim={self.dim}"

    return Elementwise, Concat


class _Elementwise(LayerSpec):
    """Elementwise merges of inputs of identical shape; `op` names the operation (a torch module op)."""

    op: ClassVar[str] = "add"
    masking = "keep"  # elementwise: the padding masks pass through (their AND)
    min_inputs = 2
    max_inputs = 99

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        if len({tuple(s) for s in in_shapes}) != 1:
            raise ShapeError(f"{self.type} needs inputs of identical shape, got {_listing(in_shapes)}",
                             hint="project or reshape an input (e.g. a dense layer) so every shape matches")
        return tuple(in_shapes[0])

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        return _merge_classes()[0](self.op)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        # n − 1 binary operations per element (+ 1 divide for the average)
        return (len(in_shapes) - 1 + (self.op == "average")) * numel(out_shape)


@register("add", family="merge")
class Add(_Elementwise):
    """Elementwise sum of two or more inputs of identical shape (e.g. a residual connection).

    **Formula.** y = x_1 + x_2 + … + x_n, over the layers listed in `inputs: [a, b, …]` (2 or more).

    **Shapes.** n inputs of the same shape S → S. No broadcasting: shapes must match exactly. No parameters.

    **FLOPs** (per sample): (n − 1)·numel(S) additions.

    **Equivalents.** PyTorch `x1 + x2 + …`; Keras `layers.Add()([x1, x2, …])`.
    """

    op = "add"
    example = "- {type: add, inputs: [a, b]}"
    example_inputs = [(4, 6), (4, 6)]


@register("multiply", family="merge")
class Multiply(_Elementwise):
    """Elementwise product of two or more inputs of identical shape (e.g. a gate).

    **Formula.** y = x_1 ⊙ x_2 ⊙ … ⊙ x_n.

    **Shapes.** n inputs of the same shape S → S (no broadcasting). No parameters.

    **FLOPs** (per sample): (n − 1)·numel(S) products.

    **Equivalents.** PyTorch `x1 * x2 * …`; Keras `layers.Multiply()([x1, x2, …])`.
    """

    op = "multiply"
    example = "- {type: multiply, inputs: [a, b]}"
    example_inputs = [(4, 6), (4, 6)]


@register("subtract", family="merge")
class Subtract(_Elementwise):
    """Elementwise difference of exactly two inputs of identical shape: the first minus the second.

    **Formula.** y = x_1 − x_2, in the order of `inputs: [x_1, x_2]`.

    **Shapes.** two inputs of the same shape S → S (no broadcasting). No parameters.

    **FLOPs** (per sample): numel(S) subtractions.

    **Equivalents.** PyTorch `x1 - x2`; Keras `layers.Subtract()([x1, x2])`.
    """

    op = "subtract"
    max_inputs = 2
    example = "- {type: subtract, inputs: [a, b]}"
    example_inputs = [(4, 6), (4, 6)]


@register("average", family="merge")
class Average(_Elementwise):
    """Elementwise mean of two or more inputs of identical shape (e.g. an ensemble of heads).

    **Formula.** y = (x_1 + x_2 + … + x_n) / n.

    **Shapes.** n inputs of the same shape S → S (no broadcasting). No parameters.

    **FLOPs** (per sample): n·numel(S) (n − 1 additions and 1 division per element).

    **Equivalents.** PyTorch `torch.stack([x1, …]).mean(0)`; Keras `layers.Average()([x1, x2, …])`.
    """

    op = "average"
    example = "- {type: average, inputs: [a, b, c]}"
    example_inputs = [(4, 6), (4, 6), (4, 6)]


@register("maximum", family="merge")
class Maximum(_Elementwise):
    """Elementwise maximum of two or more inputs of identical shape.

    **Formula.** y = max(x_1, x_2, …, x_n) per element.

    **Shapes.** n inputs of the same shape S → S (no broadcasting). No parameters.

    **FLOPs** (per sample): (n − 1)·numel(S) comparisons.

    **Equivalents.** PyTorch `torch.maximum(x1, x2)`; Keras `layers.Maximum()([x1, x2, …])`.
    """

    op = "maximum"
    example = "- {type: maximum, inputs: [a, b]}"
    example_inputs = [(4, 6), (4, 6)]


@register("minimum", family="merge")
class Minimum(_Elementwise):
    """Elementwise minimum of two or more inputs of identical shape.

    **Formula.** y = min(x_1, x_2, …, x_n) per element.

    **Shapes.** n inputs of the same shape S → S (no broadcasting). No parameters.

    **FLOPs** (per sample): (n − 1)·numel(S) comparisons.

    **Equivalents.** PyTorch `torch.minimum(x1, x2)`; Keras `layers.Minimum()([x1, x2, …])`.
    """

    op = "minimum"
    example = "- {type: minimum, inputs: [a, b]}"
    example_inputs = [(4, 6), (4, 6)]


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


@cache
def _dot_class() -> type:
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Dot(nn.Module):
        """Per-sample contraction of one axis of x1 with one axis of x2 (a batched tensordot)."""

        def __init__(self, axes: tuple[int, int], normalize: bool, out_shape: tuple[int, ...]) -> None:
            super().__init__()
            self.axes, self.normalize, self.out_shape = axes, normalize, out_shape

        def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
            a1, a2 = self.axes[0] + 1, self.axes[1] + 1  # + 1: the batch axis
            if self.normalize:  # cosine proximity: unit vectors along the contracted axes
                x1, x2 = F.normalize(x1, dim=a1), F.normalize(x2, dim=a2)
            b, n = x1.shape[0], x1.shape[a1]
            left = x1.movedim(a1, -1).reshape(b, -1, n)  # (B, P, n)
            right = x2.movedim(a2, 1).reshape(b, n, -1)  # (B, n, Q)
            return torch.bmm(left, right).reshape(b, *self.out_shape)  # (B, *rest1, *rest2)

        def extra_repr(self) -> str:
            return f"axes={self.axes}, normalize={self.normalize}"

    return Dot


@register("dot", family="merge")
class Dot(LayerSpec):
    """Per-sample dot product of two inputs along one axis of each (e.g. attention scores, cosine similarity).

    **Formula.** With a = axes[0] of x_1 and b = axes[1] of x_2 (equal sizes n):
    y[i…, j…] = Σ_{k<n} x_1[i… with k at axis a] · x_2[j… with k at axis b], the remaining axes of x_1 then
    those of x_2. With `normalize`, x_1 and x_2 are first divided by their L2 norm along a and b, so y is
    the cosine similarity.

    **Shapes.** e.g. (n,) and (n,) → (1,); (T, F) and (S, F) with axes 1 → (T, S); (T, F) and (T, G) with
    axes 0 → (F, G). When nothing remains the output is (1,) as in Keras. No parameters.

    **FLOPs** (per sample, P and Q the remaining sizes): 2·n·P·Q; with `normalize` + 3·numel per input
    (square, sum, divide) + one square root per vector.

    **Equivalents.** PyTorch `torch.bmm` / `torch.einsum` (and `F.normalize` for normalize); Keras
    `layers.Dot(axes=(a + 1, b + 1), normalize)` (Keras counts the batch axis).
    """

    example = "- {type: dot, axes: 1, inputs: [a, b]}"
    example_inputs = [(4, 6), (5, 6)]
    min_inputs = 2
    max_inputs = 2

    axes: Annotated[tuple[int, int], BeforeValidator(lambda v: _pair(v, "[axis_of_first, axis_of_second]"),
                                                     json_schema_input_type=int | tuple[int, int])] = Field(
        description="Axis to contract, over the per-sample axes (0 = first after the batch, -1 = last): one for "
                    "both inputs or [axis_of_first, axis_of_second].")
    normalize: bool = Field(default=False, description="L2-normalise both inputs along the axes first (cosine "
                            "similarity).")

    def _resolved(self, in_shapes: list[Shape]) -> tuple[int, int]:
        out = []
        for s, a in zip(in_shapes, self.axes):
            if not -len(s) <= a < len(s):
                raise ShapeError(f"axis {a} is out of range for an input of shape {fmt_shape(s)}",
                                 hint=f"use an axis in [{-len(s)}, {len(s) - 1}] (the batch axis is not counted)")
            out.append(a % len(s))
        return out[0], out[1]

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (s1, s2), (a1, a2) = in_shapes, self._resolved(in_shapes)
        if s1[a1] != s2[a2]:
            raise ShapeError(f"dot contracts axis {a1} of {fmt_shape(s1)} (size {s1[a1]}) with axis {a2} of "
                             f"{fmt_shape(s2)} (size {s2[a2]}); the sizes differ",
                             hint="choose axes of equal size, or project one input with a dense layer")
        rest = (*s1[:a1], *s1[a1 + 1:], *s2[:a2], *s2[a2 + 1:])
        return rest or (1,)

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        return _dot_class()(self._resolved(in_shapes), self.normalize, self.output_shape(in_shapes))

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        (s1, s2), (a1, a2) = in_shapes, self._resolved(in_shapes)
        n = s1[a1]
        f = 2 * n * (numel(s1) // n) * (numel(s2) // n)
        if self.normalize:
            f += 3 * (numel(s1) + numel(s2)) + numel(s1) // n + numel(s2) // n
        return f
