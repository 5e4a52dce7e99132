"""The ``flex`` backend of sparse_attention: ``torch.compile(flex_attention)`` with a block mask built from
block indices (CUDA only).

The block layout — which key blocks each query block touches, and which of those are full — is computed
from the pattern's rule one block row at a time, so no T×T mask is built here either; partial blocks get
the pattern as ``mask_mod``, full blocks none (``BlockMask.from_kv_blocks``).
"""
from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from .sparse_patterns import Pattern

if TYPE_CHECKING:
    import torch


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def block_layout(pattern: Pattern, t: int, block: int, device: Any = None) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Which key blocks each query block touches: (any, all) bool tensors (nQB, nKB), computed from the
    pattern rule one block row at a time (never a T×T tensor)."""
    import torch

    nb = _ceil(t, block)
    off = torch.arange(block, device=device)
    j = (torch.arange(nb, device=device).view(nb, 1) * block + off).view(1, nb, 1, block)  # key positions
    valid_j = j < t
    any_rows, all_rows = [], []
    for qb in range(nb):
        i = (qb * block + off).view(1, 1, block, 1)  # (1, 1, b, 1)
        ok = pattern.allowed(i, j) & valid_j & (i < t)  # (1, nKB, b, b)
        real = valid_j & (i < t)
        any_rows.append(ok.flatten(2).any(-1))
        all_rows.append((ok | ~real).flatten(2).all(-1))
    return torch.cat(any_rows), torch.cat(all_rows)


def flex_pairs(pattern: Pattern, t: int, block: int) -> int:
    """Score entries the flex kernel computes: every listed block, in full."""
    touched, _ = block_layout(pattern, t, block)
    return int(touched.sum()) * block * block


@cache
def _compiled_flex() -> Any:
    import torch
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def flex_block_mask(pattern: Pattern, t: int, block: int, device: Any) -> Any:
    """A flex ``BlockMask`` from block indices: partial blocks get the pattern's mask_mod, full ones none."""
    import torch
    from torch.nn.attention.flex_attention import BlockMask

    touched, full = block_layout(pattern, t, block, device)
    partial = touched & ~full

    def indices(sel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        counts = sel.sum(-1).to(torch.int32)  # (nQB,)
        order = torch.argsort((~sel).to(torch.int8), dim=-1, stable=True).to(torch.int32)  # selected blocks first
        return counts[None, None], order[None, None]

    def mask_mod(b: Any, h: Any, q_idx: Any, kv_idx: Any) -> Any:
        return pattern.allowed(q_idx, kv_idx)

    kv_num, kv_idx = indices(partial)
    full_num, full_idx = indices(full)
    return BlockMask.from_kv_blocks(kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=block, mask_mod=mask_mod,
                                    seq_lengths=(t, t))


def flex_attention_fused(q: "torch.Tensor", k: "torch.Tensor", v: "torch.Tensor", pattern: Pattern, *,
                         block: int = 128, scale: float | None = None, mask: Any = None) -> "torch.Tensor":
    """``torch.compile(flex_attention)`` with the pattern's block mask (CUDA; pass ``mask`` to reuse one)."""
    if q.device.type != "cuda":
        from ..errors import UsageError

        raise UsageError("sparse_attention backend 'flex' runs on CUDA only (torch.compile(flex_attention))",
                         hint="use backend: blocked (or auto) on CPU")
    if mask is None:
        mask = flex_block_mask(pattern, q.shape[2], block, q.device)
    return _compiled_flex()(q, k, v, block_mask=mask, scale=scale)
