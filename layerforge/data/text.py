"""Text as token ids: characters (the default) or words, a vocabulary, and fixed-length windows.

A corpus of L tokens becomes ⌊(L − 1) / T⌋ non-overlapping windows: x = tokens [iT, iT + T),
y = tokens [iT + 1, iT + T + 1) (the next token at every position). Splits take consecutive
stretches of windows (train first, then validation, then test), so no validation text is ever seen
in training through an overlapping window.

Characters: the vocabulary is the sorted set of characters seen, and an unknown character is an error.
Words (``data.tokenizer: word``) follow Keras' ``TextVectorization``: the text is standardised (ASCII
lowercase, ASCII punctuation removed), split on whitespace; id 0 is the padding token ``""``, id 1 the
out-of-vocabulary token ``[UNK]``, then the words by descending count (ties: the later word in byte
order first, as Keras' ``np.lexsort(...)[::-1]``), at most ``max_tokens`` ids in all.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError

PAD, OOV = "", "[UNK]"  # word ids 0 and 1, as Keras' TextVectorization
PUNCTUATION = string.punctuation  # the characters of Keras' strip regex (ASCII only)
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")  # tf.strings.lower: ASCII only
_STRIP = str.maketrans("", "", PUNCTUATION)
_SPACE = re.compile(r"[ \t\n\r\v\f]+")  # tf.strings.split's whitespace


def words(text: str, standardize: str = "lower_and_strip_punctuation") -> list[str]:
    """The words of ``text`` the way Keras' TextVectorization splits it (``standardize``: data.text_standardize's
    values, Keras' names)."""
    if standardize in ("lower", "lower_and_strip_punctuation"):
        text = text.translate(_LOWER)
    if standardize in ("strip_punctuation", "lower_and_strip_punctuation"):
        text = text.translate(_STRIP)
    return [w for w in _SPACE.split(text) if w]


def build_word_vocab(tokens: list[str], max_tokens: int | None = None) -> list[str]:
    """["", "[UNK]", words by descending count, ties by descending UTF-8 bytes], at most ``max_tokens`` long."""
    counts = Counter(tokens)
    for special in (PAD, OOV):
        counts.pop(special, None)
    ranked = sorted(counts, key=lambda w: (counts[w], w.encode()), reverse=True)
    return [PAD, OOV, *(ranked if max_tokens is None else ranked[: max_tokens - 2])]


@dataclass
class Tokenizer:
    """How text becomes ids and back: ``char`` (one id per character) or ``word``; saved in a run's data
    meta (``tokenizer``, ``vocab``, ``text_standardize``) so predict, evaluate and generate read text alike."""

    kind: str  # char | word
    vocab: list[str]
    standardize: str = "lower_and_strip_punctuation"
    _index: dict[str, int] | None = field(default=None, init=False, repr=False, compare=False)  # word → id, built once

    @property
    def unit(self) -> str:
        return "character" if self.kind == "char" else "word"

    def tokens(self, text: str) -> list[str]:
        return list(text) if self.kind == "char" else words(text, self.standardize)

    def encode(self, text: str, where: str) -> np.ndarray:
        """Text → int64 ids: an unknown character is an error, an unknown word becomes [UNK] (id 1)."""
        if self.kind == "char":
            return encode(text, self.vocab, where)
        return self.ids(self.tokens(text))

    def ids(self, toks: list[str]) -> np.ndarray:
        """Words → int64 ids (an unknown word: [UNK], id 1)."""
        if self._index is None:
            self._index = {w: i for i, w in enumerate(self.vocab)}
        index = self._index
        return np.fromiter((index.get(w, 1) for w in toks), dtype=np.int64, count=len(toks))

    def tokenize_cells(self, cells: list[str]) -> tuple[list[np.ndarray], dict[str, Any]]:
        """A CSV column of texts → word ids per row, and the tokenizer's meta (``ragged.Tokenize``)."""
        return [self.ids(self.tokens(c)) for c in cells], self.meta()

    def join(self, ids: list[int]) -> str:
        return ("" if self.kind == "char" else " ").join(self.vocab[i] for i in ids)

    def meta(self) -> dict[str, Any]:
        if self.kind == "char":
            return {"vocab": self.vocab}
        return {"vocab": self.vocab, "tokenizer": "word", "text_standardize": self.standardize}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> "Tokenizer":
        return cls(str(meta.get("tokenizer", "char")), list(meta["vocab"]),
                   str(meta.get("text_standardize", "lower_and_strip_punctuation")))


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


def windows(ids: np.ndarray, seq_len: int, where: str, unit: str = "character") -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping (x, y) windows: x (N, T) ids, y (N, T) the ids one step later."""
    n = (len(ids) - 1) // seq_len
    if n < 1:
        raise DataError(
            f"{where}: has {len(ids)} {unit}s, too few for one window of seq_len {seq_len} (+1 for the target)",
            hint=f"use a longer text or a smaller seq_len (and model.input_shape[0]) below {max(len(ids) - 1, 1)}",
        )
    x = ids[: n * seq_len].reshape(n, seq_len)  # (N, T)
    y = ids[1 : n * seq_len + 1].reshape(n, seq_len)  # (N, T)
    return x, y


def input_windows(ids: np.ndarray, seq_len: int, where: str, unit: str = "character") -> tuple[np.ndarray, list[int]]:
    """Prediction inputs covering every character, x (N, T), and each window's first character.

    Consecutive windows of T characters; when T does not divide the length, one more window ends at the
    text's last character (it repeats part of the one before), so no tail is dropped.
    """
    n = len(ids) // seq_len
    if n < 1:
        raise DataError(f"{where}: has {len(ids)} {unit}s, fewer than the model's seq_len {seq_len}",
                        hint=f"give at least {seq_len} {unit}s of text (`layerforge generate` continues a "
                             "shorter prompt)")
    starts = [i * seq_len for i in range(n)] + ([len(ids) - seq_len] if len(ids) % seq_len else [])
    return np.stack([ids[s : s + seq_len] for s in starts]), starts  # (N, T)
