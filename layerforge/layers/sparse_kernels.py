"""Sparse attention computed sparsely: O(T·w) time and memory, in ordinary torch ops.

Three backends compute softmax(Q·Kᵀ·scale)·V over the pairs a :class:`Pattern` allows:

- ``blocked`` (:func:`blocked_attention`): queries in blocks of b; each block gathers only the keys its
  pattern can reach (an ``unfold`` view of a contiguous key range for the local window, a reshaped view
  for the strided keys, the first g keys for global columns), scores those, masks inside that band, and
  combines the groups through their log-sum-exp. The work is split into chunks of queries; the backward
  pass recomputes one chunk at a time under autograd (``torch.autograd.grad`` on that chunk's slices),
  so neither pass ever holds more than one chunk's scores, and no T×T tensor or mask ever exists.
- ``masked`` (:func:`masked_attention`): the dense reference, SDPA with a T×T boolean mask.
- ``flex`` (:mod:`.sparse_flex`): CUDA only, ``torch.compile(flex_attention)`` with a ``BlockMask``
  built from block indices (``BlockMask.from_kv_blocks``, no dense mask either).

Shapes: q (B, H, T, d_k), k (B, H, T, d_k), v (B, H, T, d_v) → (B, H, T, d_v).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from .sparse_patterns import Pattern

if TYPE_CHECKING:
    import torch

CHUNK_SCORES = 2**18  # score entries per sample in one chunk (all heads): bounds what a pass holds at once


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


# ---------------------------------------------------------------------------------------------
# The plan: pure arithmetic shared by the kernel and the FLOP count.
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BlockedPlan:
    """How the blocked kernel covers a length-t sequence (dilated patterns: one residue class of it).

    ``left`` / ``right``: how far before the first / after the last query of a block its local keys
    reach; each query block of b reads the contiguous range of b + left + right keys around it.
    """

    pattern: Pattern
    t: int
    block: int
    heads: int = 1  # the chunk holds about CHUNK_SCORES scores per sample over all heads

    @property
    def local_block(self) -> int:
        return min(self.pattern.window if self.pattern.kind == "block_local" else self.block, max(self.t, 1))

    @property
    def left(self) -> int:
        return 0 if self.pattern.kind == "block_local" else min(self.pattern.window, self.t) - 1

    @property
    def right(self) -> int:
        return 0 if self.pattern.kind == "block_local" or self.pattern.causal else self.left

    @property
    def local_keys(self) -> int:
        return self.local_block + self.left + self.right

    @property
    def chunk(self) -> int:
        """Queries per chunk: a multiple of the block (and of the stride), about CHUNK_SCORES scores."""
        unit, per_query = self.local_block, self.local_keys + min(self.pattern.global_tokens, self.t)
        if self.pattern.kind == "strided":
            unit = unit * self.pattern.stride // math.gcd(unit, self.pattern.stride)
            per_query += _ceil(self.t, self.pattern.stride)
        return unit * max(1, CHUNK_SCORES // (self.heads * per_query * unit))

    def chunks(self) -> list[tuple[int, int]]:
        return [(c0, min(self.t, c0 + self.chunk)) for c0 in range(0, self.t, self.chunk)]

    def strided_keys(self, c1: int) -> int:
        """Key positions per residue class that a chunk ending at c1 scores (strided pattern)."""
        s = self.pattern.stride or 1
        return _ceil(c1 if self.pattern.causal else self.t, s)

    def key_ranges(self, c0: int, c1: int) -> list[tuple[int, int]]:
        """The key slices [lo, hi) a chunk reads, one per group: local, then strided or global."""
        p = self.pattern
        nb = _ceil(c1 - c0, self.local_block)
        ranges = [(max(0, c0 - self.left), min(self.t, c0 + nb * self.local_block + self.right))]
        if p.kind == "strided":
            ranges.append((0, min(self.t, self.strided_keys(c1) * p.stride)))
        if p.global_tokens:
            ranges.append((0, min(self.t, p.global_tokens)))
        return ranges

    def computed_pairs(self) -> int:
        """Score entries the kernel computes, padding and masked entries of partial blocks included."""
        p = self.pattern
        total = _ceil(self.t, self.local_block) * self.local_block * self.local_keys
        for c0, c1 in self.chunks():
            if p.kind == "strided":
                total += _ceil(c1 - c0, p.stride) * p.stride * self.strided_keys(c1)
            total += (c1 - c0) * min(p.global_tokens, self.t)
        if p.global_tokens and not p.causal:
            total += min(p.global_tokens, self.t) * self.t  # global rows: every key
        return total


def blocked_pairs(pattern: Pattern, t: int, block: int, heads: int = 1) -> int:
    """Score entries the blocked kernel computes per head of a length-t sequence (``heads``: how many the
    layer has, which sets the chunk size and so the strided group's share)."""
    if pattern.kind == "dilated":
        r, base = pattern.dilation, _residue_pattern(pattern)
        return sum(BlockedPlan(base, _ceil(t - c, r), block, heads).computed_pairs() for c in range(min(r, t)))
    return BlockedPlan(pattern, t, block, heads).computed_pairs()


def _residue_pattern(p: Pattern) -> Pattern:
    """A dilated window is a sliding window over each residue class i mod r."""
    return Pattern("sliding", p.window, p.causal)


# ---------------------------------------------------------------------------------------------
# The blocked kernel.
# ---------------------------------------------------------------------------------------------
def _fill(dtype: Any) -> float:
    """The score given to masked pairs: finite, so a row with nothing to attend (padding) stays finite."""
    import torch

    return torch.finfo(dtype).min / 2


def _pad_steps(x: "torch.Tensor", before: int, after: int) -> "torch.Tensor":
    """Zero steps before and after along the time axis (dim 2); no copy when there are none."""
    import torch.nn.functional as F

    return F.pad(x, (0, 0, before, after)) if before or after else x


def _local_scores(plan: BlockedPlan, qc: "torch.Tensor", k: "torch.Tensor", v: "torch.Tensor", c0: int,
                  lo: int, hi: int, scale: float) -> tuple["torch.Tensor", "torch.Tensor", int]:
    """Scores of each query block against its contiguous key range: (B, H, nb, b, K) and the value
    windows (B, H, nb, K, d_v); masked inside the band only."""
    import torch

    p, b, left, right = plan.pattern, plan.local_block, plan.left, plan.right
    bsz, heads, c, dk = qc.shape
    nb = _ceil(c, b)
    q = _pad_steps(qc * scale, 0, nb * b - c).reshape(bsz, heads, nb, b, dk)  # (B, H, nb, b, dk), scaled
    start, stop = c0 - left, c0 + nb * b + right  # key positions the chunk's blocks read
    kp = _pad_steps(k, lo - start, stop - hi)  # (B, H, nb·b + left + right, dk)
    vp = _pad_steps(v, lo - start, stop - hi)
    size = b + left + right
    kw = kp.unfold(2, size, b)  # (B, H, nb, dk, K): each block's keys, a view
    vw = vp.unfold(2, size, b).transpose(-1, -2)  # (B, H, nb, K, dv)
    scores = torch.matmul(q, kw)  # (B, H, nb, b, K)
    fill = _fill(scores.dtype)
    blocked = _band_blocked(p.kind, p.window, p.causal, b, left, size, str(q.device))
    if blocked is not None:
        scores.masked_fill_(blocked, fill)
    if start < max(p.global_tokens, 0) or stop > plan.t:  # the first / last blocks: padding or global columns
        y = torch.arange(size, device=q.device)
        kpos = start + b * torch.arange(nb, device=q.device).unsqueeze(1) + y  # (nb, K) key positions
        edge = (kpos < max(p.global_tokens, 0)) | (kpos >= plan.t)
        # the blocks with such a column, from the positions alone (no data read: traceable on fake tensors)
        rows = [n for n in range(nb) if start + b * n < max(p.global_tokens, 0) or start + b * n + size > plan.t]
        sel = slice(rows[0], rows[-1] + 1)
        scores[:, :, sel].masked_fill_(edge[sel].unsqueeze(1), fill)
    return scores, vw, nb * b


@cache
def _band_blocked(kind: str, window: int, causal: bool, b: int, left: int, size: int, device: str) -> "torch.Tensor | None":
    """The (b, K) pairs of a query block and its key range that the pattern leaves out (None: none).

    The same for every block: query offset x, key offset y, distance x + left − y. block_local reads its
    own block (causal: the triangle); the others the window (strided keys beyond it are another group).
    Made outside inference mode, so a mask first made there can later be saved for backward, and as a real
    tensor even while the memory estimate traces the model on fake tensors (it is cached)."""
    import torch
    from torch._subclasses.fake_tensor import unset_fake_temporarily

    with torch.inference_mode(False), unset_fake_temporarily():
        x = torch.arange(b, device=device).unsqueeze(1)  # (b, 1)
        y = torch.arange(size, device=device).unsqueeze(0)  # (1, K)
        if kind == "block_local":
            keep = x >= y if causal else None
        else:
            d = x + left - y
            keep = (d >= 0) & (d < window) if causal else d.abs() < window
        return None if keep is None or bool(keep.all()) else ~keep


def _strided_scores(plan: BlockedPlan, qc: "torch.Tensor", k: "torch.Tensor", v: "torch.Tensor", c0: int,
                    c1: int, scale: float) -> tuple["torch.Tensor", "torch.Tensor", int]:
    """Scores against the keys j ≡ i (mod stride) beyond the window, by residue class:
    (B, H, s, a, n) with a = chunk queries / s and n keys per class, and the values (B, H, s, n, dv)."""
    import torch

    p, s = plan.pattern, plan.pattern.stride
    bsz, heads, c, dk = qc.shape
    a, n = _ceil(c, s), plan.strided_keys(c1)
    q = _pad_steps(qc * scale, 0, a * s - c).reshape(bsz, heads, a, s, dk).transpose(2, 3)  # (B, H, s, a, dk)
    ks = _pad_steps(k, 0, n * s - k.shape[2]).reshape(bsz, heads, n, s, dk).permute(0, 1, 3, 4, 2)  # (B,H,s,dk,n)
    vs = _pad_steps(v, 0, n * s - v.shape[2]).reshape(bsz, heads, n, s, -1).transpose(2, 3)  # (B, H, s, n, dv)
    scores = torch.matmul(q, ks)  # (B, H, s, a, n)
    qm = (c0 // s + torch.arange(a, device=q.device)).unsqueeze(1)  # (a, 1): query i = qm·s + ρ
    km = torch.arange(n, device=q.device).unsqueeze(0)  # (1, n): key j = km·s + ρ, so i − j = (qm − km)·s
    dist = (qm - km) * s
    ok = (dist >= p.window) if p.causal else (dist.abs() >= p.window)  # beyond the local window
    rho = torch.arange(s, device=q.device).view(s, 1, 1)
    ok = ok & (km * s + rho < plan.t)  # (s, a, n): real keys only
    scores.masked_fill_(~ok, _fill(scores.dtype))
    return scores, vs, a * s


def _global_scores(plan: BlockedPlan, qc: "torch.Tensor", k: "torch.Tensor", v: "torch.Tensor", c0: int,
                   scale: float) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Scores against the global columns (the first g keys): (B, H, C, g)."""
    import torch

    scores = torch.matmul(qc * scale, k.transpose(-1, -2))  # (B, H, C, g)
    if plan.pattern.causal and c0 < k.shape[2]:
        i = c0 + torch.arange(qc.shape[2], device=qc.device).unsqueeze(1)
        j = torch.arange(k.shape[2], device=qc.device).unsqueeze(0)
        scores.masked_fill_(j > i, _fill(scores.dtype))
    return scores, v


def _dropout(weights: "torch.Tensor", p: float, seed: int | None) -> "torch.Tensor":
    """Attention dropout from a seeded generator, so the backward pass redraws the same mask."""
    if not p or seed is None:
        return weights
    import torch

    gen = torch.Generator(device=weights.device).manual_seed(seed)
    keep = torch.rand(weights.shape, generator=gen, device=weights.device, dtype=weights.dtype) >= p
    return weights * keep / (1 - p)


def _attend_chunk(plan: BlockedPlan, qc: "torch.Tensor", ks: list, vs: list, c0: int, c1: int, scale: float,
                  dropout: float, seed: int | None) -> "torch.Tensor":
    """Attention output of queries [c0, c1) from the key/value slices of :meth:`BlockedPlan.key_ranges`."""
    import torch

    bsz, heads, c, _ = qc.shape
    ranges = plan.key_ranges(c0, c1)
    scores, vw, cp = _local_scores(plan, qc, ks[0], vs[0], c0, *ranges[0], scale)
    if len(ks) == 1:  # one group: a plain softmax
        w = _dropout(torch.softmax(scores, -1), dropout, seed)
        return torch.matmul(w, vw).reshape(bsz, heads, cp, -1)[:, :, :c]  # (B, H, C, dv)
    outs, lses = [], []
    lse = torch.logsumexp(scores, -1, keepdim=True)
    w = _dropout(torch.exp(scores - lse), dropout, seed)
    outs.append(torch.matmul(w, vw).reshape(bsz, heads, cp, -1)[:, :, :c])  # (B, H, C, dv)
    lses.append(lse.reshape(bsz, heads, cp)[:, :, :c])
    if plan.pattern.kind == "strided":
        scores, vstr, cp = _strided_scores(plan, qc, ks[1], vs[1], c0, c1, scale)
        lse = torch.logsumexp(scores, -1, keepdim=True)  # (B, H, s, a, 1)
        w = _dropout(torch.exp(scores - lse), dropout, None if seed is None else seed + 1)
        outs.append(torch.matmul(w, vstr).transpose(2, 3).reshape(bsz, heads, cp, -1)[:, :, :c])
        lses.append(lse.squeeze(-1).transpose(2, 3).reshape(bsz, heads, cp)[:, :, :c])
    if plan.pattern.global_tokens:
        scores, vg = _global_scores(plan, qc, ks[-1], vs[-1], c0, scale)
        lse = torch.logsumexp(scores, -1, keepdim=True)
        w = _dropout(torch.exp(scores - lse), dropout, None if seed is None else seed + 2)
        outs.append(torch.matmul(w, vg))
        lses.append(lse.squeeze(-1))
    total = torch.logsumexp(torch.stack(lses), 0)  # (B, H, C): the softmax's normaliser over all groups
    return sum(torch.exp(l - total).unsqueeze(-1) * o for l, o in zip(lses, outs))


@cache
def _function() -> type:
    import torch
    from torch.autograd.function import once_differentiable

    class BlockedAttention(torch.autograd.Function):
        """Forward chunk by chunk without a graph; backward recomputes each chunk under autograd."""

        @staticmethod
        def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: BlockedPlan, scale: float,
                    dropout: float, seed: int | None) -> torch.Tensor:
            out = q.new_empty(*q.shape[:-1], v.shape[-1])  # (B, H, T, dv)
            for n, (c0, c1) in enumerate(plan.chunks()):
                ranges = plan.key_ranges(c0, c1)
                out[:, :, c0:c1] = _attend_chunk(plan, q[:, :, c0:c1], [k[:, :, lo:hi] for lo, hi in ranges],
                                                 [v[:, :, lo:hi] for lo, hi in ranges], c0, c1, scale, dropout,
                                                 _chunk_seed(seed, n))
            ctx.save_for_backward(q, k, v)
            ctx.plan, ctx.scale, ctx.dropout, ctx.seed = plan, scale, dropout, seed
            return out

        @staticmethod
        @once_differentiable
        def backward(ctx: Any, dout: torch.Tensor):
            q, k, v = ctx.saved_tensors
            plan: BlockedPlan = ctx.plan
            need_q, need_k, need_v = ctx.needs_input_grad[:3]
            dq = torch.zeros_like(q) if need_q else None
            dk = torch.zeros_like(k) if need_k else None
            dv = torch.zeros_like(v) if need_v else None
            for n, (c0, c1) in enumerate(plan.chunks()):
                ranges = plan.key_ranges(c0, c1)
                with torch.enable_grad():
                    qc = q[:, :, c0:c1].detach().requires_grad_(need_q)
                    ks = [k[:, :, lo:hi].detach().requires_grad_(need_k) for lo, hi in ranges]
                    vs = [v[:, :, lo:hi].detach().requires_grad_(need_v) for lo, hi in ranges]
                    out = _attend_chunk(plan, qc, ks, vs, c0, c1, ctx.scale, ctx.dropout, _chunk_seed(ctx.seed, n))
                    leaves = [t for t, need in ((qc, need_q), *((x, need_k) for x in ks), *((x, need_v) for x in vs))
                              if need]
                    grads = iter(torch.autograd.grad(out, leaves, dout[:, :, c0:c1], allow_unused=True))
                if need_q:
                    dq[:, :, c0:c1] = next(grads)
                for full, need in ((dk, need_k), (dv, need_v)):
                    if need:
                        for lo, hi in ranges:
                            g = next(grads)
                            if g is not None:
                                full[:, :, lo:hi] += g
            return dq, dk, dv, None, None, None, None

    return BlockedAttention


def _chunk_seed(seed: int | None, n: int) -> int | None:
    return None if seed is None else seed + 1009 * n


def blocked_attention(q: "torch.Tensor", k: "torch.Tensor", v: "torch.Tensor", pattern: Pattern, *, block: int = 64,
                      scale: float | None = None, dropout: float = 0.0) -> "torch.Tensor":
    """Sparse attention in O(T·w) time and memory (see the module docstring). ``dropout`` acts on the
    attention weights (pass 0 in eval mode); its masks come from a seed drawn from torch's generator."""
    import torch
    import torch.nn.functional as F

    t = q.shape[2]
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    seed = int(torch.randint(0, 2**40, (1,))) if dropout else None
    apply = _function().apply
    if pattern.kind == "dilated":  # a sliding window over each residue class, interleaved back
        r, base = pattern.dilation, _residue_pattern(pattern)
        n = _ceil(t, r)
        outs = []
        for c in range(r):
            qc, kc, vc = (x[:, :, c::r].contiguous() for x in (q, k, v))
            class_seed = None if seed is None else seed + 7_000_003 * c
            plan = BlockedPlan(base, qc.shape[2], block, q.shape[1])
            y = apply(qc, kc, vc, plan, scale, dropout, class_seed) if qc.shape[2] else q.new_zeros(*q.shape[:2], 0, v.shape[-1])
            outs.append(F.pad(y, (0, 0, 0, n - y.shape[2])))  # (B, H, n, dv)
        return torch.stack(outs, 3).reshape(*q.shape[:2], n * r, -1)[:, :, :t]  # (B, H, T, dv)
    out = apply(q, k, v, BlockedPlan(pattern, t, block, q.shape[1]), scale, dropout, seed)
    g = min(pattern.global_tokens, t)
    if g and not pattern.causal:  # global rows attend every key: a small dense attention, g × T
        rows = F.scaled_dot_product_attention(q[:, :, :g], k, v, dropout_p=dropout, scale=scale)
        out = torch.cat([rows, out[:, :, g:]], 2)
    return out


# ---------------------------------------------------------------------------------------------
# The dense reference.
# ---------------------------------------------------------------------------------------------
def pattern_mask(pattern: Pattern, tq: int, tk: int, device: Any = None) -> "torch.Tensor":
    """The dense bool (Tq, Tk) mask, True = attend (the ``masked`` backend's reference; T×T)."""
    import torch

    i = torch.arange(tq, device=device).unsqueeze(1)
    j = torch.arange(tk, device=device).unsqueeze(0)
    return pattern.allowed(i, j)


def masked_attention(q: "torch.Tensor", k: "torch.Tensor", v: "torch.Tensor", pattern: Pattern, *,
                     scale: float | None = None, dropout: float = 0.0, mask: "torch.Tensor | None" = None) -> "torch.Tensor":
    """Dense SDPA with the pattern's T×T mask (pass ``mask`` to reuse a cached one)."""
    import torch.nn.functional as F

    if mask is None:
        mask = pattern_mask(pattern, q.shape[2], k.shape[2], q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, scale=scale)
