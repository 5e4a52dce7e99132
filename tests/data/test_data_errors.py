"""Every bad-data error is a DataError raised before training, naming the file and saying what to fix."""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from layerforge.data import load_inputs, load_split, transform_from_state
from tests.data.conftest import facts_of, load_data
from layerforge.errors import DataError

R = np.random.default_rng(0)
X3 = R.normal(size=(20, 3)).round(3)


def csv(header: str, rows: list[str]) -> Callable[[Path], Any]:
    return lambda p: p.write_text(header + "\n" + "".join(r + "\n" for r in rows))


GOOD_ROWS = [f"{a},{b},{c},{i % 2}" for i, (a, b, c) in enumerate(X3)]
GOOD = csv("a,b,c,y", GOOD_ROWS)


def npz(**arrays) -> Callable[[Path], Any]:
    return lambda p: np.savez(p, **arrays)


def npy(arr) -> Callable[[Path], Any]:
    return lambda p: np.save(p, arr, allow_pickle=True)


def png_folder(spec: dict[str, list[tuple[int, int]] | str]) -> Callable[[Path], Any]:
    """{class: [(h, w), ...]} → a folder of PNGs; a str value writes that text into a fake image."""
    def make(root: Path) -> None:
        from PIL import Image

        root.mkdir()
        for cls, items in spec.items():
            (root / cls).mkdir()
            if isinstance(items, str):
                (root / cls / "bad.png").write_text(items)
                continue
            for i, (h, w) in enumerate(items):
                Image.fromarray(np.zeros((h, w), np.uint8), "L").save(root / cls / f"{i}.png")
    return make


D3 = [{"type": "dense", "units": 2}]
SEQ = [{"type": "lstm", "units": 4, "return_sequences": True}, {"type": "dense", "units": 10}]
EMB = [{"type": "embedding", "input_dim": 4, "output_dim": 3}, {"type": "dense", "units": 4}]

# id, files, data block, input_shape, layers, substrings the message + hint must contain
CASES: list[tuple[str, dict[str, Callable], dict, Any, list, list[str]]] = [
    ("missing file", {}, {"path": "nope.csv", "target": "y"}, [3], D3, ["nope.csv", "not found", "relative to the spec"]),
    ("missing file did-you-mean", {"train.csv": GOOD}, {"path": "trian.csv", "target": "y"}, [3], D3, ["trian.csv", "did you mean 'train.csv'"]),
    ("missing val file", {"t.csv": GOOD}, {"path": "t.csv", "target": "y", "val_path": "v.csv"}, [3], D3, ["v.csv", "data.val_path", "not found"]),
    ("unknown extension", {"t.dat": GOOD}, {"path": "t.dat", "target": "y"}, [3], D3, ["t.dat", "'.dat'", "data.format"]),
    ("empty csv", {"e.csv": lambda p: p.write_text("")}, {"path": "e.csv", "target": "y"}, [3], D3, ["e.csv", "empty", "header row"]),
    ("header only", {"h.csv": csv("a,b,c,y", [])}, {"path": "h.csv", "target": "y"}, [3], D3, ["h.csv", "no data rows", "add one row"]),
    ("target not set", {"t.csv": GOOD}, {"path": "t.csv"}, [3], D3, ["t.csv", "data.target is not set", "target: y"]),
    ("wrong target column", {"t.csv": GOOD}, {"path": "t.csv", "target": "Y"}, [3], D3, ["t.csv", "no column 'Y'", "did you mean 'y'"]),
    ("wrong feature column", {"t.csv": GOOD}, {"path": "t.csv", "target": "y", "features": ["a", "bb"]}, [2], D3, ["t.csv", "no column 'bb'", "did you mean 'b'", "a, b, c, y"]),
    ("target in features", {"t.csv": GOOD}, {"path": "t.csv", "target": "y", "features": ["a", "y"]}, [2], D3, ["t.csv", "also listed in data.features", "remove it"]),
    ("only a target column", {"t.csv": csv("y", ["0", "1"])}, {"path": "t.csv", "target": "y"}, [1], D3, ["t.csv", "no feature columns", "at least one feature"]),
    ("duplicate columns", {"t.csv": csv("a,a,y", ["1,2,0"])}, {"path": "t.csv", "target": "y"}, [2], D3, ["t.csv", "duplicate column", "unique name"]),
    ("ragged row", {"t.csv": csv("a,b,c,y", GOOD_ROWS[:3] + ["1,2,0"])}, {"path": "t.csv", "target": "y"}, [3], D3, ["t.csv", "line 5 has 3 fields but the header has 4", "missing/extra"]),
    ("non-numeric feature", {"t.csv": csv("a,b,c,y", GOOD_ROWS[:4] + ["1,red,2,0"])}, {"path": "t.csv", "target": "y"}, [3], D3, ["t.csv", "column 'b' is not numeric", "line 6", "'red'", "encode categories"]),
    ("nan features", {"t.csv": csv("a,b,c,y", GOOD_ROWS[:4] + ["1,,2,0", "nan,NA,3,1"])}, {"path": "t.csv", "target": "y"}, [3], D3,
     ["t.csv", "NaN/missing", "'a' (1), 'b' (2)", "2 rows affected", "first at line 6", "dropna"]),
    ("inf features", {"t.csv": csv("a,b,c,y", GOOD_ROWS[:4] + ["1,inf,2,0"])}, {"path": "t.csv", "target": "y"}, [3], D3, ["t.csv", "infinite", "'b' (1)", "fill or drop"]),
    ("missing label", {"t.csv": csv("a,b,c,y", GOOD_ROWS[:4] + ["1,2,3,"])}, {"path": "t.csv", "target": "y"}, [3], D3, ["t.csv", "missing value", "line 6", "drop the unlabelled"]),
    ("negative label", {"t.csv": csv("a,b,c,y", GOOD_ROWS[:4] + ["1,2,3,-1"])}, {"path": "t.csv", "target": "y"}, [3], D3, ["t.csv", "negative class label -1", "line 6", "shift them"]),
    ("label out of num_classes", {"t.csv": csv("a,b,c,y", GOOD_ROWS[:4] + ["1,2,3,5"])}, {"path": "t.csv", "target": "y", "num_classes": 2}, [3], D3,
     ["t.csv", "label 5", "out of range for num_classes 2", "line 6", "raise data.num_classes"]),
    ("labels beyond the model output", {"t.csv": csv("a,b,c,y", GOOD_ROWS[:4] + ["1,2,3,4"])}, {"path": "t.csv", "target": "y"}, [3], D3,
     ["t.csv", "need 5 classes", "2 units", "units: 5"]),
    ("too few text classes for num_classes", {"t.csv": csv("a,y", ["1,x", "2,y", "3,z"])}, {"path": "t.csv", "target": "y", "num_classes": 2, "val": 0}, [1], D3,
     ["t.csv", "3 classes", "num_classes is 2", "num_classes: 3"]),
    ("unseen label in val file", {"t.csv": csv("a,y", ["1,cat", "2,dog"] * 3), "v.csv": csv("a,y", ["1,Cat"])},
     {"path": "t.csv", "target": "y", "val_path": "v.csv"}, [1], D3, ["v.csv", "'Cat'", "line 2", "did you mean 'cat'"]),
    ("text target for regression", {"t.csv": csv("a,y", ["1,cat", "2,dog"] * 3)}, {"path": "t.csv", "target": "y", "task": "regression"}, [1],
     [{"type": "dense", "units": 1}], ["t.csv", "needs numeric targets", "'cat'", "task: classification"]),
    ("task not for csv", {"t.csv": GOOD}, {"path": "t.csv", "target": "y", "task": "language_model"}, [3], D3, ["t.csv", "does not fit", "classification, regression"]),
    ("shape mismatch", {"t.csv": GOOD}, {"path": "t.csv", "target": "y"}, [4], D3, ["t.csv", "shape [3]", "model.input_shape is [4]", "input_shape: [3]"]),
    ("regression target vs output", {"r.npz": npz(x=X3, y=R.normal(size=(20, 2)))}, {"path": "r.npz"}, [3], [{"type": "dense", "units": 3}],
     ["r.npz", "target has shape [2]", "output is [3]", "2 value(s)"]),
    ("one label per sample vs per-step output", {"s.npz": npz(x=R.normal(size=(20, 5, 3)), y=np.arange(20) % 2)}, {"path": "s.npz"}, [5, 3],
     [{"type": "lstm", "units": 4, "return_sequences": True}, {"type": "dense", "units": 2}], ["s.npz", "one label per sample", "[5, 2]", "return_sequences: false"]),
    ("too few samples", {"t.csv": csv("a,b,c,y", GOOD_ROWS[:3])}, {"path": "t.csv", "target": "y", "val": 0.1, "test": 0.1}, [3], D3,
     ["t.csv", "3 samples are too few for val 0.1 + test 0.1", "val 0", "smaller val/test"]),
    ("npz missing array", {"d.npz": npz(inputs=X3, y=np.zeros(20, int))}, {"path": "d.npz"}, [3], D3, ["d.npz", "no array 'x'", "inputs, y", "np.savez"]),
    ("npz missing target", {"d.npz": npz(x=X3, label=np.zeros(20, int))}, {"path": "d.npz"}, [3], D3, ["d.npz", "no array 'y'", "data.target"]),
    ("npz length mismatch", {"d.npz": npz(x=X3, y=np.zeros(19, int))}, {"path": "d.npz"}, [3], D3, ["d.npz", "input: 20, y: 19", "first axis"]),
    ("npz empty", {"d.npz": npz()}, {"path": "d.npz"}, [3], D3, ["d.npz", "no arrays", "np.savez"]),
    ("npz nan", {"d.npz": npz(x=np.where(np.arange(60).reshape(20, 3) == 7, np.nan, X3), y=np.zeros(20, int))}, {"path": "d.npz"}, [3], D3,
     ["d.npz", "NaN", "1 row affected", "sample 2", "fill or drop"]),
    ("npz text inputs", {"d.npz": npz(x=np.array([["a"]] * 20), y=np.zeros(20, int))}, {"path": "d.npz"}, [1], D3, ["d.npz", "must be numbers", "float32"]),
    ("npz pickled", {"d.npz": lambda p: np.savez(p, x=np.array([{}] * 20, dtype=object), y=np.zeros(20))}, {"path": "d.npz"}, [1], D3,
     ["d.npz", "pickled", "plain numeric"]),
    ("corrupt npz", {"d.npz": lambda p: p.write_bytes(b"PK\x03\x04garbage")}, {"path": "d.npz"}, [3], D3, ["d.npz", "cannot read", "np.save"]),
    ("fractional class labels", {"d.npz": npz(x=X3, y=np.full(20, 0.5))}, {"path": "d.npz", "task": "classification"}, [3], D3,
     ["d.npz", "0.5", "not a whole number", "task: regression"]),
    ("npy without targets", {"x.npy": npy(X3)}, {"path": "x.npy"}, [3], D3, ["x.npy", "targets are missing", "target_path"]),
    ("npy val file", {"x.npy": npy(X3), "y.npy": npy(np.zeros(20, int)), "v.npy": npy(X3)},
     {"path": "x.npy", "target_path": "y.npy", "val_path": "v.npy"}, [3], D3, ["v.npy", "no targets", "np.savez"]),
    ("target_path for csv", {"t.csv": GOOD, "y.npy": npy(np.zeros(20))}, {"path": "t.csv", "target": "y", "target_path": "y.npy"}, [3], D3,
     ["t.csv", "only for .npy", "data.target"]),
    ("several model inputs, one array", {"d.npz": npz(x=X3, y=np.zeros(20, int))}, {"path": "d.npz"}, {"a": [3], "b": [3]},
     [{"type": "concat", "inputs": ["a", "b"]}, {"type": "dense", "units": 2}], ["d.npz", "no array 'a'", "np.savez"]),
    ("several model inputs from csv", {"t.csv": GOOD}, {"path": "t.csv", "target": "y"}, {"a": [3], "b": [3]},
     [{"type": "concat", "inputs": ["a", "b"]}, {"type": "dense", "units": 2}], ["t.csv", "2 inputs (a, b)", "one array per model input"]),
    ("image folder without classes", {"imgs": lambda p: p.mkdir()}, {"path": "imgs"}, [1, 4, 4], D3, ["imgs", "one sub-folder per class", "move each class"]),
    ("empty class folder", {"imgs": png_folder({"a": [(4, 4)], "b": []})}, {"path": "imgs"}, [1, 4, 4], D3, ["imgs", "'b' holds no images", "remove the folder"]),
    ("broken image", {"imgs": png_folder({"a": [(4, 4)], "b": "not a png"})}, {"path": "imgs"}, [16], D3, ["bad.png", "cannot read the image", "remove or replace"]),
    ("images of different sizes", {"imgs": png_folder({"a": [(4, 4)], "b": [(5, 4)]})}, {"path": "imgs"}, [16], D3, ["0.png", "5×4", "4×4", "image_size"]),
    ("images format on a file", {"t.csv": GOOD}, {"path": "t.csv", "format": "images"}, [3], D3, ["t.csv", "needs a folder", "data.path"]),
    ("empty text", {"c.txt": lambda p: p.write_text("  \n")}, {"path": "c.txt"}, [4], EMB, ["c.txt", "empty", "corpus"]),
    ("text too short", {"c.txt": lambda p: p.write_text("abc")}, {"path": "c.txt"}, [8], EMB, ["c.txt", "3 characters", "seq_len 8", "smaller seq_len"]),
    ("not utf-8", {"c.txt": lambda p: p.write_bytes(b"ab\xff\xfecd")}, {"path": "c.txt"}, [2], EMB, ["c.txt", "not UTF-8", "save the file as UTF-8"]),
    ("bad gzip", {"t.csv.gz": lambda p: p.write_bytes(b"not gzip")}, {"path": "t.csv.gz", "target": "y"}, [3], D3, ["t.csv.gz", "cannot read", "not corrupted"]),
    ("vocabulary beyond the embedding", {"c.txt": lambda p: p.write_text("abcdefg" * 10)}, {"path": "c.txt"}, [4],
     [{"type": "embedding", "input_dim": 4, "output_dim": 3}, {"type": "dense", "units": 7}], ["c.txt", "token id 6", "input_dim 4", "at least 7", "7 symbols"]),
    ("fractional ids for an embedding", {"d.npz": npz(x=X3, y=np.zeros(20, int))}, {"path": "d.npz"}, [3],
     [{"type": "embedding", "input_dim": 4, "output_dim": 3}, {"type": "flatten"}, {"type": "dense", "units": 2}], ["d.npz", "whole-number", "integer ids"]),
    ("negative ids for an embedding", {"d.npz": npz(x=-np.ones((20, 3), int), y=np.zeros(20, int))}, {"path": "d.npz"}, [3],
     [{"type": "embedding", "input_dim": 4, "output_dim": 3}, {"type": "flatten"}, {"type": "dense", "units": 2}], ["d.npz", "negative token id -1", "0..vocab-1"]),
    ("generator task", {}, {"dataset": "adding", "task": "classification", "num_samples": 10}, [50, 2], D3, ["dataset 'adding'", "does not fit", "task: regression"]),
    ("copy too short", {}, {"dataset": "copy", "num_samples": 10}, [8, 10], SEQ, ["dataset 'copy'", "too short", "≥ 11"]),
    ("sequence float targets rank", {"s.npz": npz(x=R.normal(size=(20, 5, 3)), y=R.normal(size=(20, 5)))}, {"path": "s.npz", "task": "sequence"}, [5, 3],
     [{"type": "lstm", "units": 4, "return_sequences": True}, {"type": "dense", "units": 1}], ["s.npz", "(N, T, k)", "y[..., None]"]),
    ("per-sample labels shaped per step", {"s.npz": npz(x=X3, y=np.zeros((20, 2), int))}, {"path": "s.npz", "task": "classification"}, [3], D3,
     ["s.npz", "one label per sample", "task: sequence"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_data_raises_a_data_error_naming_the_file_and_the_fix(tmp_path, spec_of, case):
    _, files, data, shape, layers, must = case
    for name, write in files.items():
        write(tmp_path / name)
    spec = spec_of(data, shape, layers)
    with pytest.raises(DataError) as err:
        load_data(spec, base_dir=tmp_path)
    text = f"{err.value.message}\nhint: {err.value.hint}"
    assert err.value.hint, f"no hint in: {text}"
    for s in must:
        assert s in text, f"{s!r} not in:\n{text}"


def test_no_data_section_says_how_to_add_one():
    import layerforge as lf

    spec, _ = lf.spec_from_dict({"model": {"input_shape": [3], "layers": [{"type": "dense", "units": 2}]}})
    with pytest.raises(DataError, match="no data: section") as err:
        load_data(spec)
    assert "dataset: digits" in err.value.hint


def test_a_missing_shipped_file_names_it_and_the_fix(tmp_path, spec_of, monkeypatch):
    monkeypatch.setenv("LAYERFORGE_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as err:
        load_data(spec_of({"dataset": "iris"}, [4], units=3))
    assert "iris.csv.gz" in err.value.message and "LAYERFORGE_DATA_DIR" in err.value.hint


def test_an_image_folder_too_large_for_memory_is_refused(tmp_path, spec_of, monkeypatch):
    png_folder({"a": [(4, 4)] * 3, "b": [(4, 4)]})(tmp_path / "imgs")
    monkeypatch.setenv("LAYERFORGE_MAX_DATA_BYTES", "100")
    with pytest.raises(DataError) as err:
        load_data(spec_of({"path": "imgs"}, [1, 4, 4], [{"type": "flatten"}, {"type": "dense", "units": 2}]), base_dir=tmp_path)
    assert "imgs" in err.value.message and "limit of 100 bytes" in err.value.message
    assert "image_size" in err.value.hint and "LAYERFORGE_MAX_DATA_BYTES=1G" in err.value.hint


def _trained(tmp_path, spec_of, data, shape, layers):
    spec = spec_of(data, shape, layers)
    b = load_data(spec, base_dir=tmp_path)
    return spec, b.transform.state_dict(), b.meta


def test_predict_inputs_with_unknown_characters_are_refused(tmp_path, spec_of):
    (tmp_path / "c.txt").write_text("abab " * 20)
    spec, state, meta = _trained(tmp_path, spec_of, {"path": "c.txt"}, [4], [{"type": "embedding", "input_dim": 3, "output_dim": 2}, {"type": "dense", "units": 3}])
    (tmp_path / "p.txt").write_text("abcz ab")
    with pytest.raises(DataError) as err:
        load_inputs(tmp_path / "p.txt", facts_of(spec), state, meta)
    assert "p.txt" in err.value.message and "'c', 'z'" in err.value.message and "replace" in err.value.hint


def test_predict_inputs_missing_a_training_column_are_refused(tmp_path, spec_of):
    GOOD(tmp_path / "t.csv")
    spec, state, meta = _trained(tmp_path, spec_of, {"path": "t.csv", "target": "y"}, [3], D3)
    csv("a,c", ["1,2"])(tmp_path / "p.csv")
    with pytest.raises(DataError) as err:
        load_inputs(tmp_path / "p.csv", facts_of(spec), state, meta)
    assert "p.csv" in err.value.message and "no column 'b'" in err.value.message


def test_predict_text_for_a_table_model_and_evaluate_without_labels_are_refused(tmp_path, spec_of):
    GOOD(tmp_path / "t.csv")
    spec, state, meta = _trained(tmp_path, spec_of, {"path": "t.csv", "target": "y"}, [3], D3)
    (tmp_path / "p.txt").write_text("hello")
    with pytest.raises(DataError, match="not trained on text"):
        load_inputs(tmp_path / "p.txt", facts_of(spec), state, meta)
    csv("a,b,c", ["1,2,3"])(tmp_path / "p.csv")
    with pytest.raises(DataError) as err:
        load_split(tmp_path / "p.csv", facts_of(spec), state, meta)
    assert "p.csv" in err.value.message and "'y'" in err.value.message and "predict" in err.value.hint
    with pytest.raises(DataError, match="not found"):
        load_inputs(tmp_path / "missing.csv", facts_of(spec), state, meta)


def test_an_unknown_saved_transform_is_refused():
    with pytest.raises(DataError, match="unknown saved data transform 'whiten'"):
        transform_from_state({"kind": "whiten"})
