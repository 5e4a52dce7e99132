"""Variable-length sequences: ragged samples padded to the model's length T, with their lengths kept.

Sources: a CSV whose ``data.sequence_column`` holds each sample's steps separated by spaces (integer ids
or numbers; the other named column is the target), or an NPZ archive of padded ``x`` with a per-sample
``data.lengths`` array. Padding is 0 (what ``embedding: {mask_zero: true}`` and ``masking: {mask_value: 0}``
read as padding), at the end of each sequence, or at its start with ``data.padding: pre`` (Keras'
``pad_sequences`` default); per-step targets get -100 (integers) or NaN (reals) at padded steps, which the
losses and metrics skip. Batches are cut to their longest sequence (``Split.batches``). See
docs/sequences.md.
"""
from __future__ import annotations

import csv
import io
import itertools
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import DataError
from .raw import RawData
from .fileio import NpzArchive, read_text
from .readers import CSV_BYTES_PER_BYTE, _infer_csv_task

IGNORE = -100  # the target at a padded step (torch's cross_entropy ignore_index)


def valid_steps(lengths: np.ndarray, t: int, padding: str = "post") -> np.ndarray:
    """(N, t) bool: True at each sequence's valid steps (the first ``lengths`` steps, or the last with pre)."""
    steps = np.arange(t)[None, :]
    n = np.asarray(lengths)[:, None]
    return steps >= t - n if padding == "pre" else steps < n


def pad_ragged(seqs: list[np.ndarray], t: int, where: str, row_offset: int, what: str,
               padding: str = "post") -> tuple[np.ndarray, np.ndarray]:
    """Stack sequences of lengths ≤ t into (N, t, …) zero-padded at the end (``pre``: at the start), with
    their lengths (N,)."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    if lengths.size and lengths.max() > t:
        i = int(np.argmax(lengths))
        row = f"line {i + row_offset}" if row_offset else f"sample {i}"
        raise DataError(f"{where}: the {what} at {row} has {lengths[i]} steps, more than the model's {t}",
                        hint=f"set model.input_shape's first axis (T) to at least {lengths.max()}, or shorten the data")
    tail = seqs[0].shape[1:] if seqs else ()
    dtype = np.result_type(*[s.dtype for s in seqs]) if seqs else np.float32
    x = np.zeros((len(seqs), t, *tail), dtype=dtype)
    for i, s in enumerate(seqs):
        x[i, slice(t - len(s), t) if padding == "pre" else slice(0, len(s))] = s
    return x, lengths


Tokenize = Callable[[list[str]], tuple[list[np.ndarray], dict[str, Any]]]  # text cells → ids per row, meta


def read_sequence_csv(path: Path, where: str, target: str | None, column: str, delimiter: str | None, t: int,
                      feature_dim: int | None, limit: int | None = None, need_target: bool = True,
                      padding: str = "post", tokenize: Tokenize | None = None) -> RawData:
    """A CSV with one sample per row: ``column`` holds the steps separated by spaces (whole numbers → int64
    ids, else float32 values, shape (T, 1) when ``feature_dim`` is 1), ``target`` the label. With
    ``tokenize`` (data.tokenizer: word) the column holds text, turned into word ids; a text longer than T
    words keeps its first T (as Keras' TextVectorization output_sequence_length)."""
    text = read_text(path, where, CSV_BYTES_PER_BYTE)  # bounded by the data memory limit, regular files only
    delimiter = delimiter or ("\t" if ".tsv" in path.name.lower() else ",")
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows = [r for r in (reader if limit is None else itertools.islice(reader, limit + 1)) if any(c.strip() for c in r)]
    if len(rows) < 2:
        raise DataError(f"{where}: needs a header row and at least one data row", hint=f"columns: {column}, {target}")
    header = [h.strip() for h in rows[0]]
    if not need_target and target not in header:
        target = None  # predict: the labels are optional
    for name, key in ((column, "sequence_column"), (target, "target")):
        if name is not None and name not in header:
            raise DataError(f"{where}: no column '{name}' (data.{key}); the columns are: {', '.join(header)}",
                            hint=f"set data.{key} to one of them", path=("data", key))
    ci, body = header.index(column), rows[1:]
    meta: dict[str, Any] = {"sequence_column": column, "target": target, "padding": padding}
    if tokenize is not None:
        seqs, text_meta = tokenize([r[ci] if ci < len(r) else "" for r in body])
        meta.update(text_meta, truncated=sum(len(s) > t for s in seqs))
        seqs, ids = [s[:t] for s in seqs], True
    else:
        seqs, ids = _numbers(body, ci, where, column, feature_dim)
    x, lengths = pad_ragged(seqs, t, where, 2, "sequence", padding)
    raw = RawData(x={"input": x}, y=None, where=where, row_offset=2, ids=ids, lengths=lengths, padding=padding,
                  meta=meta, vocab_size=len(meta["vocab"]) if "vocab" in meta else None)
    if target is not None:
        raw.y = np.array([r[header.index(target)].strip() for r in body])
        _infer_csv_task(raw, target)
        raw.default_task = "sequence_classification" if raw.default_task == "classification" else raw.default_task
    return raw


def truncated_note(count: int, t: int) -> str:
    return f"{count} text(s) longer than the model's {t} words keep their first {t} words"


def _numbers(body: list[list[str]], ci: int, where: str, column: str,
             feature_dim: int | None) -> tuple[list[np.ndarray], bool]:
    """Each row's cell ``ci`` as steps: int64 ids when all are whole numbers (and no feature axis), else float32."""
    try:
        seqs = [np.array([float(v) for v in r[ci].split()], dtype=np.float64) for r in body]
    except (ValueError, IndexError) as e:
        raise DataError(f"{where}: column '{column}' must hold numbers separated by spaces ({e})",
                        hint="write each sample's steps as e.g. \"4 17 9 2\", or set data.tokenizer: word "
                             "for a column of text") from e
    ids = all(np.all(s == np.round(s)) for s in seqs) and feature_dim is None
    return [s.astype(np.int64) if ids else s.astype(np.float32).reshape(-1, *((1,) if feature_dim == 1 else ()))
            for s in seqs], ids


def attach_npz_lengths(raw: RawData, path: Path, where: str, key: str, padding: str = "post") -> None:
    """Read the per-sample lengths array ``key`` of an NPZ archive, check it against x, and zero x's padding
    (the steps past each length, or with ``pre`` the steps before the last ``length`` ones)."""
    with NpzArchive(path, where) as arrays:
        if key not in arrays.keys():
            raise DataError(f"{where}: no array '{key}' (data.lengths); the file holds: {', '.join(arrays.keys())}",
                            hint="save the lengths with np.savez(path, x=x, y=y, lengths=lengths)", path=("data", "lengths"))
        lengths = np.asarray(arrays.read(key)).astype(np.int64).reshape(-1)
    raw.meta["lengths_array"], raw.meta["padding"], raw.padding = key, padding, padding
    for name, x in raw.x.items():
        if x.ndim < 2 or len(lengths) != len(x):
            raise DataError(f"{where}: data.lengths has {len(lengths)} entries for {name} of shape {x.shape}",
                            hint="one length per sample, and x padded to (N, T, …)", path=("data", "lengths"))
        if lengths.min(initial=1) < 0 or lengths.max(initial=0) > x.shape[1]:
            raise DataError(f"{where}: lengths must lie in 0..{x.shape[1]} (the padded length), found "
                            f"{lengths.min()}..{lengths.max()}", path=("data", "lengths"))
        x[~valid_steps(lengths, x.shape[1], padding)] = 0  # padding is 0, whatever the file held
    raw.lengths = lengths


def mask_step_targets(y: np.ndarray, lengths: np.ndarray, task: str, padding: str = "post") -> np.ndarray:
    """Per-step targets (N, T, …) of task ``sequence`` with each sequence's padded steps marked: IGNORE
    (-100) in integer targets (classes, 0/1 labels), NaN in real ones; the losses and metrics skip both."""
    if task != "sequence" or y.ndim < 2 or y.shape[1] < lengths.max(initial=0):
        return y
    y = y.astype(np.int64 if y.dtype.kind in "iub" else np.float32, copy=True)
    y[~valid_steps(lengths, y.shape[1], padding)] = IGNORE if y.dtype.kind == "i" else np.nan
    return y
