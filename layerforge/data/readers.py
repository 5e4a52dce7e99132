"""Readers for the user's own files: CSV tables, NPZ/NPY arrays and text corpora (image folders live
in :mod:`layerforge.data.images`). Each returns :class:`~layerforge.data.raw.RawData` or raises a
:class:`~layerforge.errors.DataError` that names the file and says what to fix.
"""
from __future__ import annotations

import csv
import io
import itertools
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import DataError, KeyPath
from ..files import kind_of
from ..text import suggest
from .fileio import NpzArchive, load_npy, magic, read_text as read_text_file
from .raw import RawData, check_finite

MISSING = {"", "na", "n/a", "nan", "null", "none", "?"}
# Whole-number targets with at most this many distinct values default to classification.
MAX_INFERRED_CLASSES = 50


def detect_format(path: Path, where: str) -> str:
    """auto format: a folder → images; otherwise by extension."""
    if path.is_dir():
        return "images"
    name = path.name.lower()
    for ext, fmt in ((".csv", "csv"), (".csv.gz", "csv"), (".tsv", "csv"), (".tsv.gz", "csv"), (".npz", "npz"),
                     (".npy", "npy"), (".txt", "text"), (".txt.gz", "text")):
        if name.endswith(ext):
            return fmt
    from .images import IMAGE_EXTS

    if path.suffix.lower() in IMAGE_EXTS:
        return "images"
    raise DataError(
        f"{where}: cannot tell the format from the extension '{path.suffix or '(none)'}'",
        hint="use .csv, .tsv, .npz, .npy, .txt or a folder of images, or set data.format: csv|npz|npy|images|text",
    )


SPEC_RELATIVE = "paths in data: are relative to the spec file's folder"


def require_file(path: Path, where: str, what: str = "data file", relative: str = SPEC_RELATIVE,
                 key: KeyPath | None = None) -> None:
    """Refuse a missing file, with a did-you-mean among its folder's files; ``relative`` says what a
    relative path starts from, ``key`` which spec key named the file. A FIFO, a device or a socket (also
    behind a symlink) is refused too: reading one blocks forever or never ends."""
    if not path.exists():
        near = suggest(path.name, [p.name for p in path.parent.iterdir()]) if path.parent.is_dir() else None
        raise DataError(f"{where}: {what} not found (looked for {path})",
                        hint=(near + " " if near else "") + relative, path=key)
    kind = kind_of(path.stat().st_mode)
    if kind is not None and kind != "a directory":
        raise DataError(f"{where}: is {kind}, not a regular file", hint="give the path of a data file", path=key)


# A CSV takes about this many bytes of memory per byte of text while it is parsed (Python strings per cell).
CSV_BYTES_PER_BYTE = 32
# A text corpus: the text, its int64 ids, and the windows as tensors.
TEXT_BYTES_PER_BYTE = 32


# --- CSV ------------------------------------------------------------------------------------------
def _rows(text: str, delimiter: str, where: str, limit: int | None) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        return list(reader if limit is None else itertools.islice(reader, limit + 1))
    except csv.Error as e:  # a field over csv's limit (131,072 characters), a NUL, a bad quote
        raise DataError(f"{where}: line {reader.line_num} cannot be read as CSV ({e})",
                        hint="a CSV field holds one number or label; check that line for a stray quote or binary "
                             "data (or set data.delimiter if the file uses another separator)") from None


def _to_float(col: list[str], name: str, where: str, row0: int) -> np.ndarray:
    """Parse one column; missing markers become NaN; a non-number raises naming the line."""
    vals = np.array([("nan" if v.strip().lower() in MISSING else v) for v in col])
    try:
        return vals.astype(np.float64)
    except ValueError:
        for i, v in enumerate(vals):
            try:
                float(v)
            except ValueError:
                raise DataError(
                    f"{where}: column '{name}' is not numeric: line {i + row0} has {v!r}",
                    hint="features must be numbers; encode categories as numbers (e.g. one-hot) or leave the "
                    "column out of data.features",
                ) from None
        raise  # pragma: no cover - astype failed but every value parses


def read_csv(path: Path, where: str, target: str | None, features: list[str] | None, delimiter: str | None,
             need_target: bool = True, limit: int | None = None) -> RawData:
    """A table with a header row: feature columns → x (N, F) float, ``target`` column → y (strings).
    ``limit``: read only the header and that many rows (validate's quick look)."""
    text = read_text_file(path, where, CSV_BYTES_PER_BYTE)
    if delimiter is None:
        delimiter = "\t" if ".tsv" in path.name.lower() else ","
    rows = _rows(text, delimiter, where, limit)
    while rows and not any(c.strip() for c in rows[-1]):
        rows.pop()  # trailing blank lines
    if not rows:
        raise DataError(f"{where}: the file is empty", hint="a CSV needs a header row with column names, then one row per sample")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if not body:
        raise DataError(f"{where}: has a header but no data rows", hint="add one row per sample below the header")
    dup = sorted(h for h, n in Counter(header).items() if n > 1)
    if dup:
        raise DataError(f"{where}: duplicate column name(s) {', '.join(map(repr, dup))} in the header", hint="give every column a unique name")
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise DataError(
                f"{where}: line {i + 2} has {len(r)} fields but the header has {len(header)}",
                hint=f"check that line for a missing/extra '{delimiter}' or an unquoted separator inside a value"
                + ("" if delimiter != "," or len(r) > 1 else "; if the file uses ';' or tabs set data.delimiter"),
            )

    def col_index(name: str, role: str) -> int:
        if name in header:
            return header.index(name)
        hint = suggest(name, header)
        raise DataError(
            f"{where}: no column '{name}' (data.{role}); the columns are: {', '.join(header)}",
            hint=hint or f"set data.{role} to one of the column names above", path=("data", role),
        )

    if target is None and need_target:
        raise DataError(
            f"{where}: data.target is not set, so layerforge does not know which column holds the labels "
            f"(columns: {', '.join(header)})",
            hint=f"add e.g. target: {header[-1]}", path=("data",),
        )
    t_idx = col_index(target, "target") if target is not None and (need_target or target in header) else None
    if features is None:
        f_idx = [i for i in range(len(header)) if i != t_idx]
    else:
        f_idx = [col_index(f, "features") for f in features]
        if t_idx is not None and t_idx in f_idx:
            raise DataError(f"{where}: the target column '{target}' is also listed in data.features", hint="remove it from features")
    if not f_idx:
        raise DataError(f"{where}: no feature columns left besides the target '{target}'", hint="a table needs at least one feature column")
    names = [header[i] for i in f_idx]
    x = np.stack([_to_float([r[i] for r in body], header[i], where, 2) for i in f_idx], axis=1)  # (N, F)
    raw = RawData(x={"input": x}, y=None, where=where, row_offset=2, meta={"features": names, "target": target})
    check_finite(x, where, "the features", names, raw)
    if t_idx is not None:
        raw.y = np.array([r[t_idx].strip() for r in body])
        _infer_csv_task(raw, target or "")
    return raw


def _infer_csv_task(raw: RawData, target: str) -> None:
    """Text labels or few whole numbers → classification; any other numbers → regression."""
    y = raw.y
    assert y is not None
    missing = np.array([v.lower() in MISSING for v in y])
    if missing.any():
        i = int(np.argmax(missing))
        raise DataError(f"{raw.where}: target column '{target}' has {int(missing.sum())} missing value(s), first at {raw.row(i)}",
                        hint="every row needs a label; drop the unlabelled rows")
    try:
        nums = y.astype(np.float64)
    except ValueError:
        raw.default_task, raw.task_reason = "classification", f"target '{target}' holds text labels"
        return
    whole = bool(np.all(np.isfinite(nums)) and np.all(nums == np.round(nums)))
    distinct = len(np.unique(nums))
    if whole and distinct <= MAX_INFERRED_CLASSES:
        raw.y = nums
        raw.default_task = "classification"
        raw.task_reason = f"target '{target}' holds {distinct} distinct whole numbers (≤ {MAX_INFERRED_CLASSES})"
    else:
        raw.y = nums
        raw.default_task = "regression"
        raw.task_reason = f"target '{target}' holds {'fractional' if not whole else f'{distinct} distinct'} numbers"


# --- NPZ / NPY ------------------------------------------------------------------------------------
def read_npz(path: Path, where: str, input_names: list[str], y_key: str | None, need_target: bool = True) -> RawData:
    """Arrays by name: ``x`` (or the model input's name) and ``y``; a model with several named inputs
    reads one array per input name."""
    head = magic(path)
    if not head.startswith(b"PK"):
        if head == b"\x93NUMPY":
            raise DataError(f"{where}: is a single .npy array, not an .npz archive", hint="save with np.savez(path, x=..., y=...)")
        raise DataError(f"{where}: not a valid .npz archive", hint="write it with np.savez")
    with NpzArchive(path, where) as arrays:
        keys = arrays.keys()
        if not keys:
            raise DataError(f"{where}: the archive holds no arrays", hint="save with np.savez(path, x=..., y=...)")

        def get(key: str, role: str) -> np.ndarray:
            if key not in keys:
                hint = suggest(key, keys)
                raise DataError(f"{where}: no array '{key}' ({role}); the file holds: {', '.join(keys)}",
                                hint=hint or f"save it with np.savez(path, {key}=...)"
                                + (" or set data.target to the target array's name" if role == "targets" else ""),
                                path=("data", "target") if role == "targets" else ("data", "path"))
            return arrays.read(key)

        if len(input_names) == 1:
            key = "x" if "x" in keys or input_names[0] not in keys else input_names[0]
            x = {input_names[0]: get(key, "inputs")}
        else:
            x = {name: get(name, f"model input '{name}'") for name in input_names}
        y = get(y_key or "y", "targets") if (need_target or (y_key or "y") in keys) else None
    n = {name: len(a) if a.ndim else 0 for name, a in x.items()}
    raw = RawData(x=x, y=y, where=where)
    _check_lengths(raw, n)
    if y is not None:
        _infer_array_task(raw)
    return raw


def read_npy(path: Path, where: str, target_path: Path | None, target_where: str | None, need_target: bool = True,
             limit: int | None = None) -> RawData:
    """One .npy array of inputs; the targets come from a second .npy file (``data.target_path``).
    ``limit``: only the first rows, memory-mapped (validate's quick look)."""
    if magic(path).startswith(b"PK"):
        raise DataError(f"{where}: is an .npz archive, not a single .npy array", hint="name the file .npz or set data.format: npz")
    x = load_npy(path, where, mmap=limit is not None)
    y = None
    if target_path is not None:
        require_file(target_path, target_where or str(target_path), "target file", key=("data", "target_path"))
        y = load_npy(target_path, target_where or str(target_path), mmap=limit is not None)
    elif need_target:
        raise DataError(f"{where}: a .npy file holds one array (the inputs), so the targets are missing",
                        hint="set data.target_path: labels.npy, or save both with np.savez('data.npz', x=x, y=y)")
    raw = RawData(x={"input": x}, y=y, where=where)
    _check_lengths(raw, {"input": len(x) if x.ndim else 0})
    if limit is not None:
        raw.x = {"input": np.asarray(x[:limit])}
        raw.y = np.asarray(y[:limit]) if y is not None else None
    if y is not None:
        _infer_array_task(raw)
    return raw


def _check_lengths(raw: RawData, n: dict[str, int]) -> None:
    if any(v == 0 for v in n.values()):
        raise DataError(f"{raw.where}: holds no samples (an empty or 0-d array)", hint="the first axis must count samples")
    for name, a in raw.x.items():
        if a.dtype.kind not in "biuf":
            raise DataError(f"{raw.where}: the inputs must be numbers, got dtype {a.dtype} ({name})",
                            hint="convert the inputs to float32 or int64 before saving")
    lengths = set(n.values()) | ({len(raw.y)} if raw.y is not None and raw.y.ndim else set())
    if raw.y is not None and raw.y.ndim == 0:
        raise DataError(f"{raw.where}: the targets are a single number, not one per sample", hint="save y with shape (N,) or (N, ...)")
    if len(lengths) > 1:
        what = ", ".join(f"{k}: {v}" for k, v in n.items()) + (f", y: {len(raw.y)}" if raw.y is not None else "")
        raise DataError(f"{raw.where}: the arrays hold different numbers of samples ({what})",
                        hint="the first axis of every array counts samples and must agree")


def _infer_array_task(raw: RawData) -> None:
    """Arrays carry their dtype: integer/text targets → classification (sequence when (N, T)); floats → regression."""
    y = raw.y
    assert y is not None
    sample_rank = max(a.ndim for a in raw.x.values()) - 1
    if y.dtype.kind in "biuUS":
        if y.ndim == 1:
            raw.default_task = "sequence_classification" if sample_rank == 2 else "classification"
            raw.task_reason = "integer/text targets, one per sample"
        else:
            raw.default_task, raw.task_reason = "sequence", "integer targets, one per time step"
    elif y.dtype.kind == "f":
        if y.ndim == 3:
            raw.default_task, raw.task_reason = "sequence", "float targets shaped (N, T, k)"
        else:
            raw.default_task, raw.task_reason = "regression", "float targets"
    else:
        raise DataError(f"{raw.where}: the targets have dtype {y.dtype}", hint="save y as integers (classes) or floats (regression)")


# --- text -----------------------------------------------------------------------------------------
def read_text(path: Path, where: str) -> str:
    text = read_text_file(path, where, TEXT_BYTES_PER_BYTE)
    if not text.strip():
        raise DataError(f"{where}: the text file is empty", hint="a language-model corpus needs some text (a few KB at least)")
    return text.replace("\r\n", "\n")
