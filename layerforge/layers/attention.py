"""Attention layers: single-head self-attention, Keras-style dot-product attention, multi-head attention.

All of them compute softmax(scores)·V with ``torch.nn.functional.scaled_dot_product_attention`` (SDPA), so
the fused flash / memory-efficient kernels run on a GPU (the one exception is Keras' ``concat`` score, which
is not a dot product and is computed explicitly). A sequence is (T, D); a batch (B, T, D).
``sparse_attention`` reuses the multi-head module here with a boolean mask.
"""
from __future__ import annotations

from functools import cache
from typing import Any, Callable, Literal

from pydantic import Field, PositiveInt

from ..errors import ShapeError
from .common import Count, sequence_hint
from .registry import LayerSpec, Shape, register
from .weights import KernelOptions

_FAMILY = "attention"

MaskFn = Callable[[int, int, Any], Any]  # (Tq, Tk, device) -> bool tensor (Tq, Tk), True = attend


# ---------------------------------------------------------------------------------------------
# FLOP pieces shared with sparse_attention (see each layer's **FLOPs** section).
# ---------------------------------------------------------------------------------------------
def dense_flops(positions: int, fan_in: int, fan_out: int, bias: bool) -> int:
    """A Linear(fan_in → fan_out) applied at `positions` positions: 2·fan_in·fan_out (+ fan_out) each."""
    return positions * (2 * fan_in * fan_out + (fan_out if bias else 0))


def core_flops(pairs: int, key_dim: int, value_dim: int, heads: int = 1, scaled: bool = True) -> int:
    """softmax(Q·Kᵀ·s)·V over `pairs` (query, key) pairs per head: QKᵀ 2·d_k, the scale 1 (if any),
    softmax 3 and A·V 2·d_v per pair."""
    per_pair = 2 * key_dim + (1 if scaled else 0) + 3 + 2 * value_dim
    return heads * pairs * per_pair


# ---------------------------------------------------------------------------------------------
# Shape helpers.
# ---------------------------------------------------------------------------------------------
def sequence(layer: LayerSpec, s: Shape, role: str = "input") -> tuple[int, int]:
    """(T, D) of a sequence input, or a ShapeError naming the role (query/value/key) and the shape."""
    if len(s) != 2:
        raise ShapeError(f"{layer.type} needs its {role} as a sequence (T, D), got {tuple(s)}", hint=sequence_hint(s))
    return s[0], s[1]


def query_value_key(layer: LayerSpec, in_shapes: list[Shape]) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """The (T, D) of query, value and key from 1 to 3 inputs (value defaults to query, key to value)."""
    q = sequence(layer, in_shapes[0], "query" if len(in_shapes) > 1 else "input")
    v = sequence(layer, in_shapes[1], "value") if len(in_shapes) > 1 else q
    k = sequence(layer, in_shapes[2], "key") if len(in_shapes) > 2 else v
    if k[0] != v[0]:
        raise ShapeError(
            f"{layer.type}: key and value must have the same number of steps, got key {k[0]} and value {v[0]}",
            hint="each value is read through its key: pass key and value of equal length T",
        )
    return q, v, k


def allowed_pairs(key_mask: Any, tq: int, causal: bool, pattern: Any = None) -> Any:
    """Bool (B, Tq, Tk), True where query i may attend to key j: the key is a valid (unpadded) step, and
    j ≤ i when causal, and the fixed ``pattern`` (Tq, Tk) allows it. A query row left with no key (a
    sequence with no valid step) attends to every key instead of producing NaN; its output is padding.
    With neither ``causal`` nor ``pattern`` every query of a sample sees the same keys, so the result is
    (B, 1, Tk), broadcast over the queries: no (B, Tq, Tk) tensor is made (nor SDPA's float copy of it)."""
    import torch

    if not causal and pattern is None:
        return (key_mask | ~key_mask.any(dim=-1, keepdim=True))[:, None, :]  # (B, 1, Tk)
    b, tk = key_mask.shape
    ok = key_mask[:, None, :].expand(b, tq, tk)  # (B, Tq, Tk)
    if causal:
        ok = ok & torch.ones(tq, tk, dtype=torch.bool, device=key_mask.device).tril()
    if pattern is not None:
        ok = ok & pattern
    return ok | ~ok.any(dim=-1, keepdim=True)


def right_padded(key_mask: Any) -> bool:
    """Whether every sample's valid steps come first, padding after them (the data section's layout). Then
    a causal self-attention never lets a valid query i reach a padded key (j ≤ i), so the padding mask
    changes no valid step and can be left out (padded queries may read padded keys; they are padding)."""
    return not bool((key_mask[:, 1:] & ~key_mask[:, :-1]).any())  # no valid step after a padded one


def key_mask_of(masks: list[Any] | None) -> Any:
    """The keys' padding mask from an attention layer's per-input masks [query, value, key]: the key's,
    else the value's (the key defaults to the value), else the query's for self-attention."""
    if not masks:
        return None
    return masks[2] if len(masks) > 2 else masks[1] if len(masks) > 1 else masks[0]


# ---------------------------------------------------------------------------------------------
# torch modules (made on first use so importing the layer types does not import torch).
# ---------------------------------------------------------------------------------------------
@cache
def _modules() -> dict[str, type]:
    import torch
    import torch.nn.functional as F
    from torch import nn

    class SelfAttention(nn.Module):
        """softmax(Q·Kᵀ/√d)·V with Q, K, V three Linear projections of one input."""

        def __init__(self, d: int, units: int, use_bias: bool, causal: bool, dropout: float) -> None:
            super().__init__()
            self.query = nn.Linear(d, units, bias=use_bias)
            self.key = nn.Linear(d, units, bias=use_bias)
            self.value = nn.Linear(d, units, bias=use_bias)
            self.causal, self.dropout = causal, dropout

        def forward(self, x: torch.Tensor, masks: list[torch.Tensor | None] | None = None) -> torch.Tensor:  # x: (B, T, D)
            q, k, v = self.query(x), self.key(x), self.value(x)  # (B, T, U) each
            p = self.dropout if self.training else 0.0
            km = key_mask_of(masks)
            if km is not None:  # padded keys get no weight
                mask = allowed_pairs(km, x.shape[1], self.causal)  # (B, T, T)
                return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B, T, U)
            return F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=self.causal)  # (B, T, U)

    class DotAttention(nn.Module):
        """Keras' Attention layer: softmax(score(Q, K))·V, no projections."""

        def __init__(self, score_mode: str, use_scale: bool, causal: bool, dropout: float) -> None:
            super().__init__()
            self.score_mode, self.causal, self.dropout = score_mode, causal, dropout
            self.scale = nn.Parameter(torch.ones(())) if use_scale else None
            self.concat_score_weight = nn.Parameter(torch.ones(())) if score_mode == "concat" else None

        def forward(self, query: torch.Tensor, value: torch.Tensor, key: torch.Tensor | None = None,
                    masks: list[torch.Tensor | None] | None = None) -> torch.Tensor:
            key = value if key is None else key  # query (B, Tq, D), key (B, Tv, D), value (B, Tv, Dv)
            p = self.dropout if self.training else 0.0
            km = key_mask_of(masks)
            allowed = None if km is None else allowed_pairs(km, query.shape[1], self.causal)  # (B, Tq, Tv)
            if self.score_mode == "dot":
                q = query if self.scale is None else query * self.scale  # (s·Q)·Kᵀ = s·(Q·Kᵀ)
                if allowed is not None:
                    return F.scaled_dot_product_attention(q, key, value, attn_mask=allowed, dropout_p=p, scale=1.0)
                return F.scaled_dot_product_attention(q, key, value, dropout_p=p, is_causal=self.causal, scale=1.0)
            pre = query.unsqueeze(-2) + key.unsqueeze(-3)  # (B, Tq, Tv, D)
            if self.scale is not None:
                pre = self.scale * pre
            scores = self.concat_score_weight * torch.tanh(pre).sum(-1)  # (B, Tq, Tv)
            if allowed is None and self.causal:
                allowed = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device).tril()
            if allowed is not None:
                scores = scores.masked_fill(~allowed, float("-inf"))
            weights = F.dropout(torch.softmax(scores, dim=-1), p)  # (B, Tq, Tv)
            return weights @ value  # (B, Tq, Dv)

    class MultiHeadAttention(nn.Module):
        """Keras/torch multi-head attention: project, split into heads, SDPA, merge, project back."""

        def __init__(self, dq: int, dk: int, dv: int, heads: int, key_dim: int, value_dim: int, out_dim: int,
                     use_bias: bool, causal: bool, dropout: float, mask_fn: MaskFn | None = None) -> None:
            super().__init__()
            self.query = nn.Linear(dq, heads * key_dim, bias=use_bias)
            self.key = nn.Linear(dk, heads * key_dim, bias=use_bias)
            self.value = nn.Linear(dv, heads * value_dim, bias=use_bias)
            self.output = nn.Linear(heads * value_dim, out_dim, bias=use_bias)
            self.heads, self.key_dim, self.value_dim = heads, key_dim, value_dim
            self.causal, self.dropout, self.mask_fn = causal, dropout, mask_fn
            self._mask: torch.Tensor | None = None  # cached mask_fn result (not a buffer: not saved, not counted)

        def _attn_mask(self, tq: int, tk: int, device: torch.device) -> torch.Tensor | None:
            if self.mask_fn is None:
                return None
            m = self._mask
            if m is None or m.shape != (tq, tk) or m.device != device:
                m = self._mask = self.mask_fn(tq, tk, device)
            return m

        def forward(
            self, query: torch.Tensor, value: torch.Tensor | None = None, key: torch.Tensor | None = None,
            masks: list[torch.Tensor | None] | None = None,
        ) -> torch.Tensor:
            value = query if value is None else value
            key = value if key is None else key
            b, tq, tk = query.shape[0], query.shape[1], key.shape[1]
            q = self.query(query).view(b, tq, self.heads, self.key_dim).transpose(1, 2)  # (B, h, Tq, dk)
            k = self.key(key).view(b, tk, self.heads, self.key_dim).transpose(1, 2)  # (B, h, Tk, dk)
            v = self.value(value).view(b, tk, self.heads, self.value_dim).transpose(1, 2)  # (B, h, Tk, dv)
            key_mask = key_mask_of(masks)
            if key_mask is not None and self.causal and len(masks) == 1 and right_padded(key_mask):
                key_mask = None  # causal self-attention, right-padded: the mask changes no valid step
            y = self.attend(q, k, v, key_mask)  # (B, h, Tq, dv)
            y = y.transpose(1, 2).reshape(b, tq, self.heads * self.value_dim)  # (B, Tq, h·dv)
            return self.output(y)  # (B, Tq, out)

        def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   key_mask: torch.Tensor | None = None) -> torch.Tensor:
            """softmax(Q·Kᵀ/√d_k)·V per head; ``key_mask`` (B, Tk): padded keys get no weight
            (sparse_attention overrides this)."""
            tq = q.shape[2]
            mask = self._attn_mask(tq, k.shape[2], q.device)  # (Tq, Tk) or None
            if key_mask is not None:
                mask = allowed_pairs(key_mask, tq, self.causal, mask).unsqueeze(1)  # (B, 1, Tq, Tk)
            p = self.dropout if self.training else 0.0
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p,
                                                  is_causal=self.causal and mask is None)

    return {"SelfAttention": SelfAttention, "DotAttention": DotAttention, "MultiHeadAttention": MultiHeadAttention}


def multi_head_module(*args: Any, **kwargs: Any):
    """A MultiHeadAttention nn.Module (see the `multi_head_attention` layer)."""
    return _modules()["MultiHeadAttention"](*args, **kwargs)


def dropout_field() -> Any:
    return Field(default=0.0, ge=0.0, lt=1.0, description="Dropout on the attention weights while training (0 ≤ p < 1).")


@register("self_attention", family=_FAMILY)
class SelfAttention(KernelOptions):
    """Single-head scaled dot-product self-attention: softmax(Q·Kᵀ/√d)·V, Q, K, V projections of one input.

    **Formula.** For input x ∈ ℝ^{T×D}: Q = x·W_qᵀ + b_q, K = x·W_kᵀ + b_k, V = x·W_vᵀ + b_v (each
    W ∈ ℝ^{U×D}, U = `units`), A = softmax(Q·Kᵀ/√U) (softmax over the keys, each row sums to 1),
    y = A·V. With `causal`, query t only sees keys s ≤ t (the others get weight 0). The projections are
    named `query`, `key`, `value`, as in the classic tutorial module, so its weights load as they are.

    **Shapes.** input (T, D) → output (T, U). Parameters: 3·(D·U + U) (3·D·U without bias).

    **FLOPs** (per sample): projections 3·(2·T·D·U + T·U bias) + scores Q·Kᵀ 2·T·T·U + the 1/√U scale
    T·T + softmax 3·T·T + A·V 2·T·T·U. The causal mask counts 0 and does not reduce the count (all T·T
    scores are computed, as the dense kernels do).

    **Equivalents.** The tutorial module `query/key/value = nn.Linear(D, D)`; `torch.softmax(q @ k.mT /
    √d, -1) @ v`. PyTorch `nn.MultiheadAttention(D, 1)` and Keras `layers.MultiHeadAttention(num_heads=1,
    key_dim=U)` add an output projection; Keras `layers.Attention` has no projections and no 1/√d.
    """

    example = "- {type: self_attention, units: 64, causal: true}"
    masking = "use"  # padded keys get no weight; the output keeps the query's mask
    example_inputs = [(10, 32)]

    units: PositiveInt | None = Field(
        default=None, description="Width U of Q, K, V and of the output (default: the input width D)."
    )
    use_bias: bool = Field(default=True, description="Add a learned bias in the query, key and value projections.")
    causal: bool = Field(default=False, description="Mask future positions: step t attends only to steps ≤ t.")
    dropout: float = dropout_field()

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        t, d = sequence(self, in_shapes[0])
        return (t, self.units or d)

    def build(self, in_shapes: list[Shape]):
        d = in_shapes[0][-1]
        return _modules()["SelfAttention"](d, self.units or d, self.use_bias, self.causal, self.dropout)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        t, d = in_shapes[0]
        u = self.units or d
        return 3 * dense_flops(t, d, u, self.use_bias) + core_flops(t * t, u, u)


@register("attention", family=_FAMILY)
class Attention(LayerSpec):
    """Dot-product attention of a query over a value sequence, as Keras' Attention (Luong style, no projections).

    **Formula.** Inputs [query Q ∈ ℝ^{Tq×D}, value V ∈ ℝ^{Tv×Dv}] or [query, value, key K ∈ ℝ^{Tv×D}];
    the key defaults to the value. Scores S ∈ ℝ^{Tq×Tv}: `dot`: S = s·Q·Kᵀ; `concat`:
    S_ij = w·Σ_d tanh(s·(Q_i + K_j))_d, where s is a learned scalar (initialised to 1, only with
    `use_scale`) and w a learned scalar (initialised to 1). A = softmax(S) over the keys, y = A·V. With
    `causal`, query i sees keys j ≤ i only. There is no 1/√D scaling (Keras has none).

    **Shapes.** query (Tq, D), value (Tv, Dv), key (Tv, D) → output (Tq, Dv). With two inputs the value
    is also the key, so Dv = D. Parameters: 1 with `use_scale`, +1 for `concat`.

    **FLOPs** (per sample), P = Tq·Tv score pairs: `dot`: 2·P·D (Q·Kᵀ) + P (× s, with `use_scale`);
    `concat`: P·D (Q_i + K_j) + P·D (× s, with `use_scale`) + P·D (tanh) + P·D (sum over D) + P (× w);
    then softmax 3·P + A·V 2·P·Dv. The causal mask counts 0. `dot` runs through SDPA; `concat` is computed
    explicitly and holds a (Tq, Tv, D) tensor.

    **Equivalents.** Keras `layers.Attention(use_scale, score_mode, dropout)` called as
    `attn([query, value, key], use_causal_mask=causal)`; PyTorch `F.scaled_dot_product_attention(Q, K, V,
    scale=1.0)` for the `dot` mode.
    """

    example = "- {type: attention, inputs: [decoder, encoder], use_scale: true}"
    masking = "use"  # padded keys get no weight; the output keeps the query's mask
    example_inputs = [(10, 32), (12, 32)]
    min_inputs = 2
    max_inputs = 3

    use_scale: bool = Field(default=False, description="Multiply the scores by a learned scalar (initialised to 1).")
    score_mode: Literal["dot", "concat"] = Field(
        default="dot", description="dot: Q·Kᵀ; concat: sum of tanh(Q_i + K_j) (Bahdanau-like)."
    )
    causal: bool = Field(default=False, description="Mask future positions: query i attends only to keys j ≤ i.")
    dropout: float = dropout_field()

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (tq, d), (tv, dv), (_, dk) = query_value_key(self, in_shapes)
        if dk != d:
            which = "value (which is also the key)" if len(in_shapes) == 2 else "key"
            raise ShapeError(
                f"attention: the query's width {d} must equal the {which}'s width {dk}",
                hint="scores are Q·Kᵀ: project one of them with a dense layer to the other's width",
            )
        return (tq, dv)

    def build(self, in_shapes: list[Shape]):
        return _modules()["DotAttention"](self.score_mode, self.use_scale, self.causal, self.dropout)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        (tq, d), (tv, dv), _ = query_value_key(self, in_shapes)
        pairs = tq * tv
        if self.score_mode == "dot":
            scores = 2 * pairs * d + (pairs if self.use_scale else 0)
        else:
            scores = pairs * d * (3 + (1 if self.use_scale else 0)) + pairs
        return scores + 3 * pairs + 2 * pairs * dv


class MultiHeadBase(KernelOptions):
    """Fields and arithmetic shared by multi_head_attention and sparse_attention (not registered). The kernel
    and bias options apply to all four projections (query, key, value, output), as Keras' MultiHeadAttention."""

    num_heads: Count = Field(default=1, description="Number of attention heads h (at most 256).")
    key_dim: PositiveInt | None = Field(
        default=None, description="Width d_k of each head's query and key (default: query width / num_heads)."
    )
    value_dim: PositiveInt | None = Field(
        default=None, description="Width d_v of each head's value (default: key_dim)."
    )
    use_bias: bool = Field(default=True, description="Add learned biases in the four projections.")
    dropout: float = dropout_field()
    masking = "use"  # padded keys get no weight; the output keeps the query's mask

    def head_dims(self, query_width: int) -> tuple[int, int]:
        """(d_k, d_v), defaulting d_k to query_width / num_heads (which must divide)."""
        key_dim = self.key_dim
        if key_dim is None:
            if query_width % self.num_heads:
                raise ShapeError(
                    f"{self.type}: the query width {query_width} is not divisible by num_heads={self.num_heads}",
                    hint=f"choose num_heads dividing {query_width}, or set key_dim explicitly",
                )
            key_dim = query_width // self.num_heads
        return key_dim, self.value_dim or key_dim

    def projection_flops(self, tq: int, dq: int, tv: int, dv_in: int, dk_in: int, out_dim: int) -> int:
        h, (dk, dv) = self.num_heads, self.head_dims(dq)
        return (dense_flops(tq, dq, h * dk, self.use_bias) + dense_flops(tv, dk_in, h * dk, self.use_bias)
                + dense_flops(tv, dv_in, h * dv, self.use_bias) + dense_flops(tq, h * dv, out_dim, self.use_bias))


@register("multi_head_attention", family=_FAMILY)
class MultiHeadAttention(MultiHeadBase):
    """Multi-head attention (Keras MultiHeadAttention semantics): self-attention with 1 input, cross with 2–3.

    **Formula.** Inputs [x] (query = value = key = x), [query, value] (key = value) or [query, value, key].
    For each head j = 1 … h: Q_j = query·W_q,jᵀ + b, K_j = key·W_k,jᵀ + b (width d_k), V_j = value·W_v,jᵀ + b
    (width d_v); O_j = softmax(Q_j·K_jᵀ/√d_k)·V_j; y = [O_1 … O_h]·W_oᵀ + b_o. With `causal`, query i sees
    keys j ≤ i only.

    **Shapes.** query (Tq, Dq), value (Tv, Dv), key (Tv, Dk) → output (Tq, output_dim). Parameters:
    (Dq + Dk)·h·d_k + Dv·h·d_v + h·d_v·out, + 2·h·d_k + h·d_v + out biases.

    **FLOPs** (per sample), P = Tq·Tv: projections as dense layers 2·Tq·Dq·h·d_k + 2·Tv·Dk·h·d_k +
    2·Tv·Dv·h·d_v + 2·Tq·h·d_v·out (+ one per output element for each bias), then per head: Q·Kᵀ 2·P·d_k,
    the 1/√d_k scale P, softmax 3·P, A·V 2·P·d_v. The causal mask counts 0 and does not reduce the count.

    **Equivalents.** Keras `layers.MultiHeadAttention(num_heads, key_dim, value_dim, output_shape=out)`
    called as `mha(query, value, key, use_causal_mask=causal)`; PyTorch `nn.MultiheadAttention(Dq, h,
    kdim=Dk, vdim=Dv, batch_first=True)` when d_k = d_v = Dq / h and out = Dq.
    """

    example = "- {type: multi_head_attention, num_heads: 4, causal: true}"
    example_inputs = [(10, 32)]
    max_inputs = 3

    num_heads: Count = Field(description="Number of attention heads h (at most 256).")
    output_dim: PositiveInt | None = Field(
        default=None, description="Width of the output (default: the query's width), Keras' output_shape."
    )
    causal: bool = Field(default=False, description="Mask future positions: query i attends only to keys j ≤ i.")

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (tq, dq), _, _ = query_value_key(self, in_shapes)
        self.head_dims(dq)
        return (tq, self.output_dim or dq)

    def build(self, in_shapes: list[Shape]):
        (_, dq), (_, dv), (_, dk) = query_value_key(self, in_shapes)
        key_dim, value_dim = self.head_dims(dq)
        return multi_head_module(dq, dk, dv, self.num_heads, key_dim, value_dim, self.output_dim or dq,
                                 self.use_bias, self.causal, self.dropout)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        (tq, dq), (tv, dv), (_, dk) = query_value_key(self, in_shapes)
        key_dim, value_dim = self.head_dims(dq)
        return (self.projection_flops(tq, dq, tv, dv, dk, out_shape[-1])
                + core_flops(tq * tv, key_dim, value_dim, self.num_heads))
