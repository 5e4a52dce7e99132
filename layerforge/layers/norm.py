"""Normalisation: batch normalisation (per channel, over the batch), layer and RMS normalisation (per
vector), group normalisation (per group of channels)."""
from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from pydantic import Field, PositiveFloat, PositiveInt, field_validator

from ..errors import ShapeError
from .common import fmt_shape, numel
from .registry import Shape, register
from .weights import BatchNormOptions, GammaOptions, NormOptions

if TYPE_CHECKING:
    from torch import nn


def _drop_affine(module: "nn.Module", *, center: bool, scale: bool) -> "nn.Module":
    """Keep only the requested half of an affine norm module: γ (`weight`) and/or β (`bias`).

    torch's functional norms accept weight=None / bias=None separately, so a missing parameter simply
    means ×1 / +0 and it is absent from the state dict, as in Keras."""
    if not scale:
        module.register_parameter("weight", None)
    if not center:
        module.register_parameter("bias", None)
    return module


@register("batchnorm", family="norm")
class BatchNorm(BatchNormOptions):
    """Batch normalisation: each channel standardised with batch statistics (training) or running ones.

    **Formula.** Per channel c, over the batch and every position of that channel:
    y = (x − μ_c) / √(σ²_c + ε) · γ_c + β_c. In training μ, σ² are the batch mean and (biased) variance, and
    the running statistics update as running ← (1 − momentum)·running + momentum·batch_stat (the running
    variance uses the unbiased batch variance, n/(n−1)·σ²). In evaluation μ, σ² are the running statistics
    (initially 0 and 1).

    **Shapes.** The channel axis is the first: (F,) or (C, L) → BatchNorm1d, (C, H, W) → BatchNorm2d,
    (C, D, H, W) → BatchNorm3d; output = input shape. A time-first sequence (T, F) is read as C = T
    channels; use layernorm for per-step feature normalisation. Parameters: C each for γ and β;
    2·C buffer elements (running mean and variance, not trained).

    **FLOPs** (per sample, inference form with running statistics, N = numel(input)): 2·N (subtract μ,
    divide by the standard deviation) + C (the square root per channel) + N for ×γ + N for +β.

    **Equivalents.** PyTorch `nn.BatchNorm1d/2d/3d(C, eps, momentum, affine)`; Keras
    `layers.BatchNormalization(axis=1, momentum=1 − momentum, epsilon, center, scale)`.
    """

    example = "- {type: batchnorm}"
    example_inputs = [(6, 5, 5)]

    momentum: float = Field(default=0.1, description="PyTorch momentum, in (0, 1]: the weight of the NEW batch statistic. "
                            "Keras' momentum weighs the old running value: Keras 0.99 ≙ 0.01 here.")
    epsilon: PositiveFloat = Field(default=1e-5, description="Added to the variance before the square root "
                                   "(PyTorch's default; Keras uses 1e-3).")
    center: bool = Field(default=True, description="Learn a shift β per channel.")
    scale: bool = Field(default=True, description="Learn a scale γ per channel.")

    @field_validator("momentum")
    @classmethod
    def _momentum_in_range(cls, v: float) -> float:
        if not 0.0 < v <= 1.0:
            raise ValueError(
                f"momentum must be in (0, 1] (PyTorch convention: the weight of the new batch statistic; "
                f"Keras momentum m is 1 − m here), got {v}"
            )
        return v

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (s,) = in_shapes
        if not 1 <= len(s) <= 4:
            raise ShapeError(f"batchnorm needs (F,), (C, L), (C, H, W) or (C, D, H, W), got {fmt_shape(s)}",
                             hint="reshape the input so the channel axis comes first")
        return tuple(s)

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        from torch import nn

        s = in_shapes[0]
        cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d, 4: nn.BatchNorm3d}[len(s)]
        affine = self.center or self.scale
        bn = cls(s[0], eps=self.epsilon, momentum=self.momentum, affine=affine)
        return _drop_affine(bn, center=self.center, scale=self.scale) if affine else bn

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        n, c = numel(in_shapes[0]), in_shapes[0][0]
        return 2 * n + c + n * (int(self.scale) + int(self.center))


@register("layernorm", family="norm")
class LayerNorm(NormOptions):
    """Layer normalisation: each vector along the last axis standardised by its own mean and variance.

    **Formula.** For each vector x ∈ ℝ^D along the last axis: μ = (1/D) Σ x_i, σ² = (1/D) Σ (x_i − μ)²,
    y = (x − μ) / √(σ² + ε) · γ + β, with γ, β ∈ ℝ^D shared by every vector. Same in training and evaluation
    (no running statistics, independent of the batch).

    **Shapes.** input (…, D) → same shape; the statistics are over the last axis only. Parameters: D each for
    γ and β.

    **FLOPs** (per sample, V = numel(input)/D vectors, N = numel(input)): mean N + centre N + square and sum
    2·N + divide by the standard deviation N + one square root per vector V, + N for ×γ + N for +β:
    5·N + V (+ N + N).

    **Equivalents.** PyTorch `nn.LayerNorm(D, eps, elementwise_affine=scale or center, bias=center)`; Keras
    `layers.LayerNormalization(axis=-1, epsilon, center, scale)`.
    """

    example = "- {type: layernorm}"
    example_inputs = [(10, 16)]
    masking = "keep"  # statistics per step: a padding mask passes through

    epsilon: PositiveFloat = Field(default=1e-5, description="Added to the variance before the square root.")
    center: bool = Field(default=True, description="Learn a shift β per feature.")
    scale: bool = Field(default=True, description="Learn a scale γ per feature.")

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        return tuple(in_shapes[0])

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        from torch import nn

        affine = self.center or self.scale
        ln = nn.LayerNorm(in_shapes[0][-1], eps=self.epsilon, elementwise_affine=affine)
        return _drop_affine(ln, center=self.center, scale=self.scale) if affine else ln

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        s = in_shapes[0]
        n = numel(s)
        return 5 * n + n // s[-1] + n * (int(self.scale) + int(self.center))


@register("group_norm", family="norm")
class GroupNorm(NormOptions):
    """Group normalisation: the channels split into groups, each standardised over its channels and positions.

    **Formula.** Channels-first x ∈ ℝ^{C×…}, split into G = `groups` groups of C/G consecutive channels; per
    sample and group g, over its C/G channels and every position: μ_g, σ²_g (biased), then
    y = (x − μ_g) / √(σ²_g + ε) · γ_c + β_c with γ, β ∈ ℝ^C per channel. Independent of the batch (no running
    statistics); groups = 1 normalises a whole sample (over C and positions), groups = C each channel alone
    (instance norm).

    **Shapes.** input (C,), (C, L), (C, H, W) or (C, *spatial); G divides C → same shape. Parameters: C each
    for γ and β.

    **FLOPs** (per sample, N = numel(input)): 5·N + G (as layernorm: mean, centre, square and sum, divide, one
    square root per group) + N for ×γ + N for +β.

    **Equivalents.** PyTorch `nn.GroupNorm(groups, C, eps, affine)`; Keras `layers.GroupNormalization(groups,
    axis=1, epsilon, center, scale)` (Keras' default ε is 1e-3, its default groups 32).
    """

    example = "- {type: group_norm, groups: 2}"
    example_inputs = [(6, 5, 5)]

    groups: PositiveInt = Field(description="Number of channel groups G; must divide the channels C.")
    epsilon: PositiveFloat = Field(default=1e-5, description="Added to the variance before the square root "
                                   "(PyTorch's default; Keras uses 1e-3).")
    center: bool = Field(default=True, description="Learn a shift β per channel.")
    scale: bool = Field(default=True, description="Learn a scale γ per channel.")

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (s,) = in_shapes
        if s[0] % self.groups:
            raise ShapeError(f"groups={self.groups} must divide the {s[0]} channels of the input {fmt_shape(s)}",
                             hint="choose groups among the divisors of the channel count (axis 0)")
        return tuple(s)

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        from torch import nn

        affine = self.center or self.scale
        gn = nn.GroupNorm(self.groups, in_shapes[0][0], eps=self.epsilon, affine=affine)
        return _drop_affine(gn, center=self.center, scale=self.scale) if affine else gn

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        n = numel(in_shapes[0])
        return 5 * n + self.groups + n * (int(self.scale) + int(self.center))


@cache
def _rms_norm_class() -> type:
    """torch.nn.RMSNorm's math and state dict (`weight`), also on torch < 2.4 which lacks it."""
    import torch
    from torch import nn

    class RMSNorm(nn.Module):
        def __init__(self, dim: int, eps: float, scale: bool) -> None:
            super().__init__()
            self.eps = eps
            self.weight = nn.Parameter(torch.ones(dim)) if scale else None

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, …, D)
            y = x * torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + self.eps)
            return y if self.weight is None else y * self.weight

        def extra_repr(self) -> str:
            return f"dim={None if self.weight is None else self.weight.numel()}, eps={self.eps}"

    return RMSNorm


@register("rms_norm", family="norm")
class RMSNorm(GammaOptions):
    """Root-mean-square normalisation: each vector along the last axis divided by its RMS (no centring).

    **Formula.** For each vector x ∈ ℝ^D along the last axis: y = x / √((1/D) Σ x_i² + ε) · γ, with γ ∈ ℝ^D
    shared by every vector (Zhang & Sennrich 2019; the norm of T5 and LLaMA). No mean subtraction, no β.

    **Shapes.** input (…, D) → same shape. Parameters: D for γ (none with `scale: false`).

    **FLOPs** (per sample, V = numel(input)/D vectors, N = numel(input)): square N + sum N + (mean, + ε,
    reciprocal square root) 3 per vector + normalise N, + N for ×γ: 3·N + 3·V (+ N).

    **Equivalents.** PyTorch `nn.RMSNorm(D, eps, elementwise_affine=scale)` (torch ≥ 2.4; the same math and
    state dict here on older versions); Keras
    `layers.RMSNormalization(axis=-1, epsilon)`.
    """

    example = "- {type: rms_norm}"
    example_inputs = [(10, 16)]

    epsilon: PositiveFloat = Field(default=1e-6, description="Added to the mean square before the square root "
                                   "(Keras' default; PyTorch's nn.RMSNorm defaults to the float type's machine epsilon).")
    scale: bool = Field(default=True, description="Learn a scale γ per feature.")

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        return tuple(in_shapes[0])

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        return _rms_norm_class()(in_shapes[0][-1], self.epsilon, self.scale)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        s = in_shapes[0]
        n = numel(s)
        return 3 * n + 3 * (n // s[-1]) + n * int(self.scale)
