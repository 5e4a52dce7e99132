"""Character-level text: a vocabulary of the characters seen, ids, and fixed-length windows.

A corpus of L characters becomes ⌊(L − 1) / T⌋ non-overlapping windows: x = chars [iT, iT + T),
y = chars [iT + 1, iT + T + 1) (the next character at every position). Splits take consecutive
stretches of windows (train first, then validation, then test), so no validation text is ever seen
in training through an overlapping window.
"""
from __future__ import annotations

import numpy as np

from ..errors import DataError


def build_vocab(*texts: str) -> list[str]:
    """The sorted set of characters in ``texts`` (a character's id is its index)."""
    return sorted(set().union(*(set(t) for t in texts)))


def encode(text: str, vocab: list[str], where: str) -> np.ndarray:
    """Characters → int64 ids; a character outside the vocabulary raises naming it."""
    index = {c: i for i, c in enumerate(vocab)}
    try:
        return np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))
    except KeyError:
        unknown = sorted(set(text) - set(index))
        shown = ", ".join(repr(c) for c in unknown[:10]) + (" …" if len(unknown) > 10 else "")
        raise DataError(
            f"{where}: {len(unknown)} character(s) not in the training vocabulary: {shown}",
            hint="remove or replace them (the model only knows the characters of its training text)",
        ) from None


def windows(ids: np.ndarray, seq_len: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping (x, y) windows: x (N, T) ids, y (N, T) the ids one step later."""
    n = (len(ids) - 1) // seq_len
    if n < 1:
        raise DataError(
            f"{where}: has {len(ids)} characters, too few for one window of seq_len {seq_len} (+1 for the target)",
            hint=f"use a longer text or a smaller seq_len (and model.input_shape[0]) below {max(len(ids) - 1, 1)}",
        )
    x = ids[: n * seq_len].reshape(n, seq_len)  # (N, T)
    y = ids[1 : n * seq_len + 1].reshape(n, seq_len)  # (N, T)
    return x, y


def input_windows(ids: np.ndarray, seq_len: int, where: str) -> tuple[np.ndarray, list[int]]:
    """Prediction inputs covering every character, x (N, T), and each window's first character.

    Consecutive windows of T characters; when T does not divide the length, one more window ends at the
    text's last character (it repeats part of the one before), so no tail is dropped.
    """
    n = len(ids) // seq_len
    if n < 1:
        raise DataError(f"{where}: has {len(ids)} characters, fewer than the model's seq_len {seq_len}",
                        hint=f"give at least {seq_len} characters of text (`layerforge generate` continues a "
                             "shorter prompt)")
    starts = [i * seq_len for i in range(n)] + ([len(ids) - seq_len] if len(ids) % seq_len else [])
    return np.stack([ids[s : s + seq_len] for s in starts]), starts  # (N, T)
