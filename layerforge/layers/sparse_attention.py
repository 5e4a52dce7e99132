"""Sparse self-attention: a sliding window plus optional strided positions (Child et al. 2019).

Implemented as multi-head attention with a boolean mask passed to SDPA: correct and simple, but it
computes all T·T scores. The FLOP count is the sparse one (only the attended pairs), so the layer's
FLOPs describe the algorithm, not this dense implementation.
"""
from __future__ import annotations

from functools import partial
from typing import Any

from pydantic import Field, PositiveInt

from .attention import MultiHeadBase, core_flops, multi_head_module, sequence
from .registry import Shape, register


def sparse_mask(tq: int, tk: int, device: Any = None, *, window: int, stride: int | None, causal: bool):
    """Bool (Tq, Tk) mask, True where query i attends to key j: |i−j| < window (j ≤ i if causal),
    or (i − j) divisible by stride (j ≤ i if causal)."""
    import torch

    i = torch.arange(tq, device=device).unsqueeze(1)  # (Tq, 1)
    j = torch.arange(tk, device=device).unsqueeze(0)  # (1, Tk)
    d = i - j  # (Tq, Tk): how far back key j lies
    allowed = d.abs() < window
    if stride is not None:
        allowed |= d.remainder(stride) == 0
    if causal:
        allowed &= d >= 0
    return allowed


def _floor_sum(n: int, s: int) -> int:
    """Σ_{m=0}^{n−1} ⌊m/s⌋."""
    q, r = divmod(n, s)
    return s * q * (q - 1) // 2 + q * r


def sparse_pairs(t: int, window: int, stride: int | None, causal: bool) -> int:
    """The exact number of (query, key) pairs the pattern attends for a length-t sequence.

    For a distance d = i − j ≥ 1 the pair is attended when d < window or stride | d. Counting, for each
    m = 0 … t−1, the attended distances 1 … m gives c(m) = min(m, window−1) + #{d ∈ [window, m] : stride | d};
    causal: t (the diagonal) + Σ c(m); symmetric: the same backwards, t + 2·Σ c(m).
    """
    a = window - 1
    local = t * (t - 1) // 2 if t <= a else a * (a - 1) // 2 + (t - a) * a
    strided = 0
    if stride is not None and t > window:
        strided = _floor_sum(t, stride) - _floor_sum(window, stride) - (t - window) * ((window - 1) // stride)
    return t + (1 if causal else 2) * (local + strided)


@register("sparse_attention", family="attention")
class SparseAttention(MultiHeadBase):
    """Sparse multi-head self-attention: each step attends to a local window plus every stride-th step.

    **Formula.** Multi-head self-attention (see `multi_head_attention`: per head Q, K, V projections,
    softmax(Q·Kᵀ/√d_k)·V, heads joined and projected back to D) where query i only attends to the keys j
    of its pattern (Child et al. 2019, "strided"): local |i − j| < `window`, or strided (i − j) divisible
    by `stride` (when given); with `causal` (default) only j ≤ i. The diagonal is always attended, so
    every row has a key. Causal example, window 3, stride 4: step 9 sees 9, 8, 7 (local) and 5, 1 (strided).

    **Shapes.** input (T, D) → output (T, D). Parameters as `multi_head_attention` with out = D:
    2·D·h·d_k + 2·D·h·d_v (+ 2·h·d_k + h·d_v + D biases).

    **FLOPs** (per sample), P = the number of attended (i, j) pairs, computed exactly from T, window,
    stride and causal (`sparse_pairs`): projections 2·T·D·h·(2·d_k + d_v) + 2·T·h·d_v·D (+ biases), then per
    head 2·P·d_k (Q·Kᵀ) + P (scale) + 3·P (softmax) + 2·P·d_v (A·V). This counts only the sparse work;
    this implementation masks a dense T×T score matrix (a boolean mask into SDPA), so it actually does the
    dense attention's work, more than the count says.

    **Equivalents.** PyTorch `nn.MultiheadAttention(D, h, batch_first=True)` called with
    `attn_mask=~sparse_mask(...)` (True = blocked there); Keras `layers.MultiHeadAttention(h, key_dim)`
    with `attention_mask=sparse_mask(...)`. The pattern is the strided one of "Generating Long Sequences
    with Sparse Transformers" (Child et al. 2019).
    """

    example = "- {type: sparse_attention, window: 4, stride: 4, num_heads: 2}"
    example_inputs = [(16, 32)]

    window: PositiveInt = Field(
        description="Local width: keys fewer than `window` steps away are attended (causal: the window most recent, this one included)."
    )
    stride: PositiveInt | None = Field(
        default=None, description="Also attend to every stride-th step (i − j divisible by stride)."
    )
    causal: bool = Field(default=True, description="Attend only to the current and earlier steps (j ≤ i).")

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        t, d = sequence(self, in_shapes[0])
        self.head_dims(d)
        return (t, d)

    def build(self, in_shapes: list[Shape]):
        _, d = in_shapes[0]
        key_dim, value_dim = self.head_dims(d)
        mask_fn = partial(sparse_mask, window=self.window, stride=self.stride, causal=self.causal)
        return multi_head_module(d, d, d, self.num_heads, key_dim, value_dim, d, self.use_bias,
                                 False, self.dropout, mask_fn)

    def pairs(self, t: int) -> int:
        """Attended (query, key) pairs for a length-t input."""
        return sparse_pairs(t, self.window, self.stride, self.causal)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        t, d = in_shapes[0]
        key_dim, value_dim = self.head_dims(d)
        return self.projection_flops(t, d, t, d, d, d) + core_flops(self.pairs(t), key_dim, value_dim, self.num_heads)
