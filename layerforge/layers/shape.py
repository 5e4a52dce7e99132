"""Reshaping: flatten, reshape, permute and repeat_vector over the per-sample axes (the batch axis is never
touched)."""
from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from pydantic import Field, PositiveInt, field_validator

from ..errors import ShapeError
from .common import fmt_shape, numel
from .registry import LayerSpec, Shape, register

if TYPE_CHECKING:
    from torch import nn


@register("flatten", family="reshaping")
class Flatten(LayerSpec):
    """Flattens every axis but the batch into one: (d_1, …, d_n) → (d_1·…·d_n,).

    **Formula.** y[i] = x.reshape(−1)[i], row-major (C order: the last axis varies fastest).

    **Shapes.** any (d_1, …, d_n) → (d_1·…·d_n,); e.g. (64, 7, 7) → (3136,). No parameters.

    **FLOPs** 0 (a reshape moves no arithmetic).

    **Equivalents.** PyTorch `nn.Flatten()`; Keras `layers.Flatten()` (its default,
    `data_format="channels_last"`, flattens the tensor as it is stored). NOT Keras
    `Flatten(data_format="channels_first")`: that one moves the channels last before flattening, so a
    (C, H, W) input comes out in (H, W, C) order. When porting a Keras channels_last model, the dense
    layer after the flatten reads (H, W, C)-ordered features: permute its kernel's rows from (H, W, C) to
    (C, H, W) order (or put `- {type: permute, dims: [1, 2, 0]}` before this flatten).
    """

    example = "- {type: flatten}"
    example_inputs = [(4, 3, 3)]

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        return (numel(in_shapes[0]),)

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        from torch import nn

        return nn.Flatten()

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return 0


@register("reshape", family="reshaping")
class Reshape(LayerSpec):
    """Reshapes the per-sample axes to `target_shape` (one −1 entry is inferred), keeping the element order.

    **Formula.** y = x.reshape(B, *target_shape), row-major (C order), the batch axis B untouched.

    **Shapes.** (d_1, …, d_n) → target_shape, which must hold the same number of elements; e.g. (12,) →
    [3, -1] gives (3, 4), while [5, -1] is an error (5 does not divide 12). No parameters.

    **FLOPs** 0 (a reshape moves no arithmetic).

    **Equivalents.** PyTorch `x.reshape(B, *target_shape)` / `nn.Unflatten`; Keras
    `layers.Reshape(target_shape)`.
    """

    example = "- {type: reshape, target_shape: [4, -1]}"
    example_inputs = [(24,)]

    target_shape: list[int] = Field(description="New per-sample shape (batch excluded); one entry may be -1 (inferred).")

    @field_validator("target_shape")
    @classmethod
    def _valid_target(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("target_shape needs at least one axis, got []")
        if any(d < 1 and d != -1 for d in v):
            raise ValueError(f"target_shape entries must be positive or -1, got {v}")
        if v.count(-1) > 1:
            raise ValueError(f"target_shape may contain one -1 (the inferred axis), got {v}")
        return v

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (s,) = in_shapes
        n = numel(s)
        known = numel(tuple(d for d in self.target_shape if d != -1))
        if -1 in self.target_shape:
            if n % known:
                raise ShapeError(
                    f"cannot reshape {fmt_shape(s)} ({n} elements) into {self.target_shape}: "
                    f"the fixed axes hold {known} elements, which does not divide {n}",
                    hint=f"choose fixed sizes whose product divides {n}",
                )
            return tuple(n // known if d == -1 else d for d in self.target_shape)
        if known != n:
            raise ShapeError(
                f"cannot reshape {fmt_shape(s)} ({n} elements) into {self.target_shape} ({known} elements)",
                hint=f"the sizes must multiply out to {n}; put -1 on one axis to infer it",
            )
        return tuple(self.target_shape)

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        from torch import nn

        # (B, *in) → (B, n) → (B, *target)
        return nn.Sequential(nn.Flatten(), nn.Unflatten(1, self.output_shape(in_shapes)))

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return 0


@cache
def _permute_class() -> type:
    import torch
    from torch import nn

    class Permute(nn.Module):
        """Reorders the per-sample axes; the batch axis stays first."""

        def __init__(self, dims: tuple[int, ...]) -> None:
            super().__init__()
            self.dims = (0, *(d + 1 for d in dims))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.permute(self.dims)

        def extra_repr(self) -> str:
            return f"dims={self.dims}"

    return Permute


@register("permute", family="reshaping")
class Permute(LayerSpec):
    """Reorders the per-sample axes, e.g. a time-first sequence (T, F) into channels-first (F, T).

    **Formula.** Output axis k is input axis dims[k]: y[j_0, …, j_{n−1}] = x[i] with i_{dims[k]} = j_k.

    **Shapes.** (d_0, …, d_{n−1}) → (d_{dims[0]}, …, d_{dims[n−1]}); e.g. dims [1, 0]: (T, F) → (F, T).
    No parameters.

    **FLOPs** 0 (a copy).

    **Equivalents.** PyTorch `x.permute(0, 1 + dims[0], …)`; Keras `layers.Permute([d + 1 for d in dims])`.
    """

    example = "- {type: permute, dims: [1, 0]}"
    example_inputs = [(5, 3)]

    dims: list[int] = Field(description="Permutation of the per-sample axes, 0-based (0 = first axis after the batch; "
                            "Keras counts from 1).")

    @field_validator("dims")
    @classmethod
    def _is_permutation(cls, v: list[int]) -> list[int]:
        if sorted(v) != list(range(len(v))) or not v:
            raise ValueError(f"dims must be a permutation of 0 … n−1 (each axis once, 0-based), got {v}")
        return v

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (s,) = in_shapes
        if len(s) != len(self.dims):
            raise ShapeError(f"dims {self.dims} reorder {len(self.dims)} axes but the input {fmt_shape(s)} has {len(s)}",
                             hint=f"give a permutation of 0 … {len(s) - 1}")
        return tuple(s[d] for d in self.dims)

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        return _permute_class()(tuple(self.dims))

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return 0


@register("repeat_vector", family="reshaping")
class RepeatVector(LayerSpec):
    """Repeats a vector n times into a sequence, e.g. to feed an encoder's summary to a decoder at every step.

    **Formula.** y[t, f] = x[f] for t < n.

    **Shapes.** input (F,) → output (n, F). No parameters.

    **FLOPs** 0 (a copy).

    **Equivalents.** PyTorch `x.unsqueeze(1).repeat(1, n, 1)`; Keras `layers.RepeatVector(n)`.
    """

    example = "- {type: repeat_vector, n: 3}"
    example_inputs = [(5,)]

    n: PositiveInt = Field(description="Number of repetitions (the output's time steps).")

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (s,) = in_shapes
        if len(s) != 1:
            raise ShapeError(f"repeat_vector needs a vector (F,), got {fmt_shape(s)}",
                             hint="flatten the input first, or use a global pooling layer")
        return (self.n, s[0])

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        return _repeat_class()(self.n)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return 0


@cache
def _repeat_class() -> type:
    import torch
    from torch import nn

    class RepeatVector(nn.Module):
        def __init__(self, n: int) -> None:
            super().__init__()
            self.n = n

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, F) → (B, n, F)
            return x.unsqueeze(1).repeat(1, self.n, 1)

        def extra_repr(self) -> str:
            return f"n={self.n}"

    return RepeatVector
