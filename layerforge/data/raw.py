"""The in-between form of data: numpy arrays read from one source, before labels are encoded, the
samples split and the result turned into tensors. Readers and generators produce :class:`RawData`;
:mod:`layerforge.data.prepare` turns it into a :class:`~layerforge.data.bundle.DataBundle`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

@dataclass
class RawData:
    """Samples from one file / dataset / generator.

    ``x`` is one array (N, *sample) or, for a model with several named inputs, a dict of them;
    ``y`` holds the targets as read (strings for text labels) or None (prediction inputs).
    """

    x: Any  # np.ndarray | dict[str, np.ndarray]
    y: np.ndarray | None
    where: str  # the file (or "dataset 'adding'") named in errors
    default_task: str | None = None
    task_reason: str = ""  # why default_task was chosen, for meta / docs
    class_names: list[str] | None = None  # when the source knows them (built-ins)
    ids: bool = False  # x holds integer token ids (text, copy task) that may be one-hot encoded
    vocab_size: int | None = None  # for ids
    row_offset: int = 0  # CSV: the file line of sample 0 (2, after the header); 0 = report "sample i"
    meta: dict[str, Any] = field(default_factory=dict)
    lengths: np.ndarray | None = None  # variable-length sequences: valid steps per sample (x padded with 0)
    padding: str = "post"  # where the padding of variable-length sequences sits: post (the end) or pre (the start)

    def __len__(self) -> int:
        return int(len(self.y) if self.y is not None else len(first(self.x)))

    def row(self, i: int) -> str:
        """How a user finds sample ``i`` in the source: ``line 7`` for CSV, ``sample 7`` otherwise."""
        return f"line {i + self.row_offset}" if self.row_offset else f"sample {i}"


def first(x: Any) -> np.ndarray:
    return next(iter(x.values())) if isinstance(x, dict) else x


def display(path: Path, base_dir: Path | None = None) -> str:
    """A path as the user wrote it, relative to the spec's folder when possible."""
    try:
        return str(path.relative_to(base_dir)) if base_dir else str(path)
    except ValueError:
        return str(path)


def check_finite(arr: np.ndarray, where: str, what: str, columns: list[str] | None = None, rows: RawData | None = None) -> None:
    """Raise a DataError naming the columns/rows that hold NaN or ±inf."""
    if arr.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(arr)
    if not bad.any():
        return
    n_rows = int(bad.reshape(len(arr), -1).any(axis=1).sum())
    first_row = int(np.argmax(bad.reshape(len(arr), -1).any(axis=1)))
    row = rows.row(first_row) if rows is not None else f"sample {first_row}"
    kinds = " and ".join(k for k, m in (("NaN/missing", np.isnan(arr)), ("infinite", np.isinf(arr))) if m.any())
    detail = ""
    if columns is not None and arr.ndim == 2:
        per_col = bad.sum(axis=0)
        cols = [f"'{c}' ({int(n)})" for c, n in zip(columns, per_col) if n]
        detail = f" in column{'s' if len(cols) > 1 else ''} {', '.join(cols[:8])}{' …' if len(cols) > 8 else ''}"
    raise DataError(
        f"{where}: {kinds} values in {what}{detail}: {n_rows} row{'s' if n_rows != 1 else ''} affected, first at {row}",
        hint="fill or drop those rows (e.g. pandas: df.dropna()) before training; layerforge does not impute",
    )
