"""Export the small UCI datasets that scikit-learn bundles into files under ``data/``.

Run once by a developer (scikit-learn is a dev-only dependency; the layerforge runtime reads the
exported files with numpy alone)::

    python data/export_sklearn.py

Outputs (deterministic: gzip headers carry no timestamp, floats are written as Python's shortest
round-trip repr, so re-running gives byte-identical files):

- ``digits.npz``            x uint8 (1797, 1, 8, 8) in 0..16, y uint8 (1797,), class_names ("0".."9")
- ``iris.csv.gz``           4 feature columns + ``species`` (setosa / versicolor / virginica)
- ``wine.csv.gz``           13 feature columns + ``cultivar`` (class_0 / class_1 / class_2)
- ``breast_cancer.csv.gz``  30 feature columns + ``diagnosis`` (malignant / benign)

Column names are sklearn's feature names in snake_case (``sepal length (cm)`` → ``sepal_length_cm``)
so they can be written in a spec's ``features:`` list without quoting.
"""
from __future__ import annotations

import gzip
import io
import re
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent


def snake(name: str) -> str:
    """``'mean radius'`` → ``mean_radius``; ``'sepal length (cm)'`` → ``sepal_length_cm``."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def write_csv_gz(path: Path, columns: list[str], rows: np.ndarray, labels: list[str]) -> None:
    buf = io.StringIO()
    buf.write(",".join(columns) + "\n")
    for row, label in zip(rows, labels):
        buf.write(",".join(repr(float(v)) for v in row) + "," + label + "\n")
    with open(path, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(buf.getvalue().encode("ascii"))


def export_table(loader, stem: str, target: str) -> None:
    b = loader()
    names = [snake(n) for n in b.feature_names]
    assert len(set(names)) == len(names), f"{stem}: snake_case names collide"
    labels = [str(b.target_names[t]) for t in b.target]
    write_csv_gz(OUT / f"{stem}.csv.gz", [*names, target], b.data, labels)
    print(f"{stem}.csv.gz: {b.data.shape[0]} rows × {b.data.shape[1]} features, target '{target}' "
          f"({', '.join(map(str, b.target_names))})")


def export_digits() -> None:
    from sklearn.datasets import load_digits

    b = load_digits()
    x = b.data.astype(np.uint8).reshape(-1, 1, 8, 8)  # values are whole numbers 0..16
    assert np.array_equal(x.reshape(len(x), -1), b.data), "digits are not whole numbers"
    y = b.target.astype(np.uint8)
    names = np.array([str(t) for t in b.target_names])
    path = OUT / "digits.npz"
    # np.savez_compressed writes zip entries with the current time; write fixed timestamps instead.
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key, arr in (("x", x), ("y", y), ("class_names", names)):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            b_io = io.BytesIO()
            np.save(b_io, arr, allow_pickle=False)
            zf.writestr(info, b_io.getvalue())
    print(f"digits.npz: x {x.shape} {x.dtype} (0..{x.max()}), y {y.shape}, 10 classes")


def main() -> None:
    from sklearn.datasets import load_breast_cancer, load_iris, load_wine

    export_digits()
    export_table(load_iris, "iris", "species")
    export_table(load_wine, "wine", "cultivar")
    export_table(load_breast_cancer, "breast_cancer", "diagnosis")


if __name__ == "__main__":
    main()
