"""Built-in datasets: the small files shipped in the repository's ``data/`` folder (see data/README.md)
and the seeded generators of :mod:`layerforge.data.synthetic`.

The data folder is ``$LAYERFORGE_DATA_DIR`` when set, else ``data/`` beside the ``layerforge`` package
(the repository root for a source checkout / editable install).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DataError
from .raw import RawData
from .readers import read_csv, read_npz, read_text

TABLES = {  # name → (file, target column)
    "iris": ("iris.csv.gz", "species"),
    "wine": ("wine.csv.gz", "cultivar"),
    "breast_cancer": ("breast_cancer.csv.gz", "diagnosis"),
}
SHAKESPEARE = ("shakespeare/tempest_gut.txt", "shakespeare/midsummer_nights_dream_gut.txt")


def data_dir() -> Path:
    env = os.environ.get("LAYERFORGE_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "data"


def _file(rel: str, name: str) -> tuple[Path, str]:
    path = data_dir() / rel
    where = f"dataset '{name}' ({path})"
    if not path.exists():
        raise DataError(
            f"{where}: the shipped data file is missing",
            hint="run layerforge from a full checkout (the files live in data/), or point LAYERFORGE_DATA_DIR at a "
            "folder holding them; `python data/export_sklearn.py` re-creates the UCI files",
        )
    return path, where


def load_table(name: str) -> RawData:
    fname, target = TABLES[name]
    path, where = _file(fname, name)
    raw = read_csv(path, where, target, None, ",")
    raw.task_reason = f"built-in dataset '{name}' (labels in column '{target}')"
    raw.meta.update(file=str(path))
    return raw


def load_digits() -> RawData:
    path, where = _file("digits.npz", "digits")
    raw = read_npz(path, where, ["input"], "y")
    with np.load(path, allow_pickle=False) as z:
        raw.class_names = [str(c) for c in z["class_names"]]
    raw.x = {"input": raw.x["input"].astype(np.float32)}  # (N, 1, 8, 8) values 0..16
    raw.default_task, raw.task_reason = "classification", "built-in dataset 'digits'"
    raw.meta.update(file=str(path))
    return raw


def load_shakespeare() -> tuple[str, list[str]]:
    """The corpus text (the plays joined by a blank line) and the files it came from."""
    parts, files = [], []
    for rel in SHAKESPEARE:
        path, where = _file(rel, "shakespeare")
        parts.append(read_text(path, where).strip("\n"))
        files.append(str(path))
    return "\n\n\n".join(parts) + "\n", files
