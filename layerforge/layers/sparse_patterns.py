"""Sparse attention patterns: which keys each query attends, as a rule on positions, with exact counts.

A :class:`Pattern` says whether query i attends key j (``allowed``, a broadcasting rule on integer
tensors or arrays, never a stored T×T table) and counts the attended (query, key) pairs of a length-T
sequence in closed form. It is torch-free: validation and FLOP counting use it without importing torch.

Patterns (d = i − j, how far back the key lies; ``causal`` adds d ≥ 0):

- ``sliding``: |d| < window (Longformer's sliding window; causal: the `window` most recent keys).
- ``dilated``: d divisible by ``dilation`` r and |d| / r < window (Longformer's dilated window:
  `window` keys spaced r apart on each side).
- ``strided``: |d| < window, or d divisible by ``stride`` (Child et al. 2019, "strided").
- ``block_local``: i and j in the same block of `window` positions (⌊i/w⌋ = ⌊j/w⌋).

``global_tokens`` g (with sliding or block_local, as Longformer / BigBird): the first g positions attend
every key and are attended by every query (causal: still only j ≤ i).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

PatternKind = Literal["sliding", "dilated", "strided", "block_local"]
PATTERNS: tuple[str, ...] = ("sliding", "dilated", "strided", "block_local")
GLOBAL_PATTERNS: tuple[str, ...] = ("sliding", "block_local")


@dataclass(frozen=True)
class Pattern:
    """One sparse pattern (see the module docstring for each kind's rule)."""

    kind: str
    window: int
    causal: bool = True
    stride: int | None = None  # strided only
    dilation: int = 1  # dilated only
    global_tokens: int = 0  # sliding and block_local only

    # --- the rule ---------------------------------------------------------------------------------
    def local(self, i: Any, j: Any) -> Any:
        """The pattern without global tokens: True where query i attends key j (broadcasts)."""
        d = i - j
        w = self.window
        if self.kind == "sliding":
            ok = abs(d) < w
        elif self.kind == "dilated":
            r = self.dilation
            ok = (d % r == 0) & (abs(d) < w * r)
        elif self.kind == "strided":
            ok = (abs(d) < w) | (d % self.stride == 0)
        else:  # block_local
            ok = (i // w) == (j // w)
        return ok & (d >= 0) if self.causal else ok

    def allowed(self, i: Any, j: Any) -> Any:
        """True where query i attends key j: the local rule, plus global rows and columns."""
        ok = self.local(i, j)
        g = self.global_tokens
        if g:
            glob = (i < g) | (j < g)
            ok = ok | ((glob & (i >= j)) if self.causal else glob)
        return ok

    # --- exact counts ------------------------------------------------------------------------------
    def row_counts(self, t: int) -> np.ndarray:
        """Keys attended by each of the t queries (int64 array of length t)."""
        i = np.arange(t, dtype=np.int64)
        counts = _local_row_counts(self, i, t)
        g = min(self.global_tokens, t)
        if g:
            rows = i + 1 if self.causal else np.full(t, t, dtype=np.int64)
            overlap = _local_keys_below(self, i, g)  # local keys that are also global columns (j < g ≤ i)
            counts = np.where(i < g, rows, counts + g - overlap)
        return counts

    def attended_pairs(self, t: int) -> int:
        """The number of (query, key) pairs the pattern attends in a length-t sequence."""
        return int(self.row_counts(t).sum())


def _sliding_rows(i: np.ndarray, n: np.ndarray | int, w: int, causal: bool) -> np.ndarray:
    """Row counts of a sliding window of width w at positions i of a length-n sequence."""
    back = np.minimum(i, w - 1) + 1
    return back if causal else back + np.minimum(n - 1 - i, w - 1)


def _multiples_in(lo: int, hi: np.ndarray, s: int) -> np.ndarray:
    """How many multiples of s lie in [lo, hi] (0 where hi < lo); lo ≥ 1."""
    return np.maximum(0, hi // s - (lo - 1) // s)


def _local_row_counts(p: Pattern, i: np.ndarray, t: int) -> np.ndarray:
    w = p.window
    if p.kind == "sliding":
        return _sliding_rows(i, t, w, p.causal)
    if p.kind == "dilated":  # a sliding window over each residue class i mod r
        r = p.dilation
        n_class = (t - i % r + r - 1) // r  # length of i's residue class
        return _sliding_rows(i // r, n_class, w, p.causal)
    if p.kind == "strided":  # the window, plus the multiples of stride beyond it, backwards (and forwards)
        extra = _multiples_in(w, i, p.stride)
        if not p.causal:
            extra = extra + _multiples_in(w, t - 1 - i, p.stride)
        return _sliding_rows(i, t, w, p.causal) + extra
    start = (i // w) * w  # block_local
    return i - start + 1 if p.causal else np.minimum(start + w, t) - start


def _local_keys_below(p: Pattern, i: np.ndarray, g: int) -> np.ndarray:
    """For queries i ≥ g: how many of their local keys lie below g (sliding and block_local)."""
    lowest = np.maximum(0, i - p.window + 1) if p.kind == "sliding" else (i // p.window) * p.window
    return np.clip(g - lowest, 0, None)


def sparse_pairs(t: int, window: int, stride: int | None, causal: bool) -> int:
    """Attended pairs of the sliding window (plus every stride-th step when ``stride`` is given)."""
    kind = "sliding" if stride is None else "strided"
    return Pattern(kind, window, causal, stride=stride).attended_pairs(t)
