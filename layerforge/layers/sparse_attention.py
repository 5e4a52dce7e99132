"""Sparse self-attention that is computed sparsely: sliding, dilated, strided and block-local patterns
(with global tokens), on a blocked O(T·w) kernel, a dense masked reference, or flex_attention on CUDA.

The patterns live in :mod:`.sparse_patterns`, the kernels in :mod:`.sparse_kernels` (blocked, masked) and
:mod:`.sparse_flex`; this file is the layer type: its parameters, shapes, FLOPs (the work the chosen
backend really does) and module.
"""
from __future__ import annotations

from functools import cache
from typing import Any, Literal

from pydantic import Field, PositiveInt, model_validator

from .attention import MultiHeadBase, _modules, core_flops, sequence
from .registry import Shape, register
from .sparse_patterns import GLOBAL_PATTERNS, Pattern, sparse_pairs  # noqa: F401  (sparse_pairs: public helper)

Backend = Literal["auto", "blocked", "flex", "masked"]


def choose_backend(backend: str, pattern: Pattern, t: int, block: int, heads: int) -> str:
    """The backend that runs: ``auto`` is ``blocked`` unless that would compute at least half of the T² scores
    of dense attention (short sequences), where the masked dense kernel is faster and its mask small."""
    if backend != "auto":
        return backend
    from .sparse_kernels import blocked_pairs

    return "masked" if 2 * blocked_pairs(pattern, t, block, heads) >= t * t else "blocked"


def sparse_mask(tq: int, tk: int, device: Any = None, *, window: int, stride: int | None, causal: bool):
    """Bool (Tq, Tk) mask of the sliding window (plus every stride-th step when ``stride`` is given),
    True where query i attends key j."""
    from .sparse_kernels import pattern_mask

    kind = "sliding" if stride is None else "strided"
    return pattern_mask(Pattern(kind, window, causal, stride=stride), tq, tk, device)


@cache
def _module_class() -> type:
    class SparseMultiHeadAttention(_modules()["MultiHeadAttention"]):  # type: ignore[misc]
        """Multi-head attention whose core runs one of the sparse backends."""

        def __init__(self, d: int, heads: int, key_dim: int, value_dim: int, use_bias: bool, dropout: float,
                     pattern: Pattern, backend: str, block: int) -> None:
            super().__init__(d, d, d, heads, key_dim, value_dim, d, use_bias, False, dropout)
            self.pattern, self.backend, self.block = pattern, backend, block
            self._cache: tuple[Any, Any] | None = None  # (key, dense mask or flex BlockMask); not saved

        def _cached(self, key: Any, make: Any) -> Any:
            """The mask for this length and device, made once (outside inference mode, so that a mask
            first made while predicting can later be saved for backward)."""
            import torch

            if self._cache is None or self._cache[0] != key:
                with torch.inference_mode(False):
                    self._cache = (key, make())
            return self._cache[1]

        def attend(self, q, k, v, key_mask=None):  # (B, h, T, dk) ×2, (B, h, T, dv), (B, T) → (B, h, T, dv)
            from . import sparse_kernels as sk
            from .attention import allowed_pairs, right_padded

            p = self.dropout if self.training else 0.0
            t, dev = q.shape[2], q.device
            if key_mask is not None and self.pattern.causal and right_padded(key_mask):
                key_mask = None  # a valid query's keys (j ≤ i) are all valid: the chosen backend runs unchanged
            if key_mask is not None:  # padded keys: the pattern's dense mask with them removed (masked backend)
                pattern = self._cached(("masked", t, dev), lambda: sk.pattern_mask(self.pattern, t, t, dev))
                mask = allowed_pairs(key_mask, t, False, pattern).unsqueeze(1)  # (B, 1, T, T)
                return sk.masked_attention(q, k, v, self.pattern, dropout=p, mask=mask)
            backend = choose_backend(self.backend, self.pattern, t, self.block, self.heads)
            if backend == "masked":
                mask = self._cached(("masked", t, dev), lambda: sk.pattern_mask(self.pattern, t, t, dev))
                return sk.masked_attention(q, k, v, self.pattern, dropout=p, mask=mask)
            if backend == "flex":
                from . import sparse_flex as sf

                if p:
                    from ..errors import UsageError

                    raise UsageError("sparse_attention backend 'flex' has no attention dropout",
                                     hint="set dropout: 0, or use backend: blocked")
                mask = self._cached(("flex", t, dev), lambda: sf.flex_block_mask(self.pattern, t, self.block, dev)) \
                    if dev.type == "cuda" else None
                return sf.flex_attention_fused(q, k, v, self.pattern, block=self.block, mask=mask)
            return sk.blocked_attention(q, k, v, self.pattern, block=self.block, dropout=p)

    return SparseMultiHeadAttention


@register("sparse_attention", family="attention")
class SparseAttention(MultiHeadBase):
    """Sparse multi-head self-attention: each step attends a local pattern of keys, computed in O(T·w).

    **Formula.** Multi-head self-attention (see `multi_head_attention`: per head Q, K, V projections,
    softmax(Q·Kᵀ/√d_k)·V, heads joined and projected back to D) where query i attends only the keys j of
    its `pattern`. With d = i − j: `sliding` |d| < `window`; `dilated` d a multiple of r = `dilation`
    and |d| < window·r (window keys r apart, per side); `strided` |d| < window or d a multiple of
    `stride` (Child et al. 2019); `block_local` i and j in the same block of `window` positions. With
    `causal` (default) only d ≥ 0. `global_tokens` g (sliding, block_local): the first g positions attend
    every key and every query attends them (causal: still j ≤ i), as Longformer's / BigBird's global
    attention. The diagonal is always attended, so every row has a key. Causal example, window 3,
    stride 4: step 9 sees 9, 8, 7 (local) and 5, 1 (strided).

    Backends: `blocked` cuts the queries into blocks of `block_size` b, gathers for each block only the keys
    its pattern can reach (a view of one contiguous range; strided keys and global columns as separate small
    groups), masks inside that band, and recomputes chunk by chunk in the backward pass: time and memory
    grow as T·(w + b), no T×T tensor or mask exists in either pass. `masked` is the dense reference (SDPA
    with a T×T boolean mask: T² time and memory). `auto` runs `blocked`, unless that would compute at least
    half of dense attention's T² scores (short sequences, where the dense kernel is faster and its mask
    small): then `masked`. `flex` is `torch.compile(flex_attention)` with a block mask built from block
    indices (CUDA only, no dropout). A padding mask (variable-length sequences) removes the padded keys:
    with a causal pattern and right padding a valid query's keys are all valid anyway, so the backend runs
    unchanged; otherwise the `masked` backend runs (T²), whatever `backend` says.

    **Shapes.** input (T, D) → output (T, D). Parameters as `multi_head_attention` with out = D:
    2·D·h·d_k + 2·D·h·d_v (+ 2·h·d_k + h·d_v + D biases).

    **FLOPs** (per sample): projections 2·T·D·h·(2·d_k + d_v) + 2·T·h·d_v·D (+ biases), then per head and
    per *computed* score 2·d_k (Q·Kᵀ) + 1 (scale) + 3 (softmax) + 2·d_v (A·V). The computed scores are
    the work the backend really does: `blocked` ⌈T/b⌉·b·(b + reach) for the window (reach = window − 1
    back, and as much forward when not causal; block_local: b = window and no reach), plus the strided
    keys per chunk, plus T·g global columns (and g·T global rows when not causal); `masked` T²; `flex`
    every listed b×b block in full. Masked entries of partial blocks count. `inspect` shows the attended
    pairs (the pattern's own count) beside the computed ones.

    **Equivalents.** PyTorch `nn.MultiheadAttention(D, h, batch_first=True)` called with
    `attn_mask=~mask` (True = blocked there), or `flex_attention` with a `BlockMask`; Keras
    `layers.MultiHeadAttention(h, key_dim)` with `attention_mask=mask`. The patterns are Longformer's
    sliding / dilated / global attention (Beltagy et al. 2020), the strided pattern of Sparse Transformers
    (Child et al. 2019) and BigBird's block-local + global attention (Zaheer et al. 2020).
    """

    example = "- {type: sparse_attention, pattern: strided, window: 4, stride: 4, num_heads: 2}"
    example_inputs = [(16, 32)]

    window: PositiveInt = Field(
        description="Local width: keys fewer than `window` steps away (causal: the window most recent, this one "
                    "included); dilated: keys per side; block_local: the block length."
    )
    pattern: Literal["sliding", "dilated", "strided", "block_local"] = Field(
        default="sliding", description="Which keys a query attends (default: strided when `stride` is given, else sliding)."
    )
    stride: PositiveInt | None = Field(
        default=None, description="strided: also attend every stride-th step (i − j divisible by stride)."
    )
    dilation: PositiveInt = Field(default=2, description="dilated: the gap r between attended keys (r = 1 is sliding).")
    global_tokens: int = Field(
        default=0, ge=0, description="sliding, block_local: the first g positions attend and are attended by all."
    )
    causal: bool = Field(default=True, description="Attend only to the current and earlier steps (j ≤ i).")
    block_size: PositiveInt | None = Field(
        default=None, description="Queries per block of the blocked and flex kernels (default: the window rounded "
                                  "up to a multiple of 16, at most 64; blocked block_local: the window)."
    )
    backend: Backend = Field(
        default="auto", description="auto (blocked, or masked where blocked would do at least half the dense work), "
                                    "blocked (O(T·w)), masked (dense T×T reference) or flex (CUDA)."
    )

    @model_validator(mode="before")
    @classmethod
    def _strided_when_stride(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("stride") is not None and "pattern" not in data:
            data = {**data, "pattern": "strided"}
        return data

    @model_validator(mode="after")
    def _options_fit_the_pattern(self) -> "SparseAttention":
        if self.pattern == "strided" and self.stride is None:
            raise ValueError("pattern strided needs a stride (e.g. stride: 16)")
        if self.stride is not None and self.pattern != "strided":
            raise ValueError(f"stride only applies to pattern strided, not {self.pattern}")
        if "dilation" in self.model_fields_set and self.pattern != "dilated":
            raise ValueError(f"dilation only applies to pattern dilated, not {self.pattern}")
        if self.global_tokens and self.pattern not in GLOBAL_PATTERNS:
            raise ValueError(f"global_tokens applies to patterns {' and '.join(GLOBAL_PATTERNS)}, not {self.pattern}")
        if self.backend == "flex" and self.block % 16:
            raise ValueError(f"backend flex needs block_size a multiple of 16, got {self.block_size}")
        return self

    @property
    def block(self) -> int:
        """The block size used: block_size, or the window rounded up to a multiple of 16, at most 64
        (small windows get small blocks, so little of each block's key range is masked)."""
        return self.block_size or min(64, 16 * -(-self.window // 16))

    def sparse_pattern(self) -> Pattern:
        return Pattern(self.pattern, self.window, self.causal, stride=self.stride, dilation=self.dilation,
                       global_tokens=self.global_tokens)

    def backend_for(self, t: int) -> str:
        """The backend that runs for a length-t input (see :func:`choose_backend`)."""
        return choose_backend(self.backend, self.sparse_pattern(), t, self.block, self.num_heads)

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        t, d = sequence(self, in_shapes[0])
        self.head_dims(d)
        return (t, d)

    def build(self, in_shapes: list[Shape]):
        _, d = in_shapes[0]
        key_dim, value_dim = self.head_dims(d)
        return _module_class()(d, self.num_heads, key_dim, value_dim, self.use_bias, self.dropout,
                               self.sparse_pattern(), self.backend, self.block)

    def pairs(self, t: int) -> int:
        """Attended (query, key) pairs per head for a length-t input (the pattern's own count)."""
        return self.sparse_pattern().attended_pairs(t)

    def computed_pairs(self, t: int) -> int:
        """Score entries per head the backend computes for a length-t input (padding and masked included)."""
        from . import sparse_flex, sparse_kernels

        backend = self.backend_for(t)
        if backend == "masked":
            return t * t
        if backend == "flex":
            return sparse_flex.flex_pairs(self.sparse_pattern(), t, self.block)
        return sparse_kernels.blocked_pairs(self.sparse_pattern(), t, self.block, self.num_heads)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        t, d = in_shapes[0]
        key_dim, value_dim = self.head_dims(d)
        return self.projection_flops(t, d, t, d, d, d) + core_flops(self.computed_pairs(t), key_dim, value_dim,
                                                                     self.num_heads)

    def extra_info(self, in_shapes: list[Shape], out_shape: Shape) -> dict[str, Any]:
        t = in_shapes[0][0]
        return {"backend": self.backend_for(t), "attended_pairs": self.pairs(t), "computed_pairs": self.computed_pairs(t)}
