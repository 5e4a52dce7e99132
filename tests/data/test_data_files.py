"""The user's own files round-trip: CSV, NPZ, NPY, image folders and text, with splits and val/test files."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.data.conftest import load_data


def write_csv(path: Path, header: list[str], rows: list[list], sep: str = ",") -> Path:
    text = sep.join(header) + "\n" + "".join(sep.join(str(v) for v in r) + "\n" for r in rows)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def table(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(seed)
    x = r.normal(size=(n, 3)).round(4)
    return x, (x[:, 0] > 0).astype(int)


def test_csv_with_text_labels_keeps_columns_and_class_names(tmp_path, spec_of):
    x, y = table()
    write_csv(tmp_path / "t.csv", ["a", "b", "c", "kind"], [[*row, ["cat", "dog"][k]] for row, k in zip(x, y)])
    b = load_data(spec_of({"path": "t.csv", "target": "kind", "val": 0.25, "standardize": False}, [3], units=2),
                  base_dir=tmp_path)
    assert b.task == "classification" and b.num_classes == 2 and b.class_names == ["cat", "dog"]
    assert b.meta["features"] == ["a", "b", "c"] and b.meta["target"] == "kind"
    assert len(b.train) == 30 and len(b.val) == 10
    got = torch.cat([b.train.x, b.val.x]).double()
    labels = torch.cat([b.train.y, b.val.y])
    # every loaded row is a row of the file with its own label (the split only reorders)
    for row, lab in zip(got, labels):
        i = int(np.argmin(np.abs(x - row.numpy()).sum(1)))
        assert np.allclose(x[i], row.numpy(), atol=1e-6) and y[i] == int(lab)


def test_csv_features_subset_tsv_and_gzip(tmp_path, spec_of):
    x, y = table()
    write_csv(tmp_path / "t.tsv.gz", ["a", "b", "c", "y"], [[*row, k] for row, k in zip(x, y)], sep="\t")
    b = load_data(spec_of({"path": "t.tsv.gz", "target": "y", "features": ["c", "a"], "val": 0}, [2], units=2),
                  base_dir=tmp_path)
    assert b.meta["features"] == ["c", "a"] and b.val is None and len(b.train) == 40
    assert b.meta["task_reason"].startswith("target 'y' holds 2 distinct whole numbers")


def test_csv_fractional_target_is_regression_and_task_can_be_forced(tmp_path, spec_of):
    x, _ = table()
    write_csv(tmp_path / "r.csv", ["a", "b", "c", "price"], [[*row, row[0] * 2.5] for row in x])
    b = load_data(spec_of({"path": "r.csv", "target": "price"}, [3], units=1), base_dir=tmp_path)
    assert b.task == "regression" and b.train.y.dtype == torch.float32 and b.train.y.shape == (32,)
    assert b.num_classes is None and b.meta["target_shape"] == []
    write_csv(tmp_path / "c.csv", ["a", "b", "c", "n"], [[*row, i % 3] for i, row in enumerate(x)])
    forced = load_data(spec_of({"path": "c.csv", "target": "n", "task": "regression"}, [3], units=1), base_dir=tmp_path)
    assert forced.task == "regression" and forced.train.y.dtype == torch.float32


def test_separate_val_and_test_files_are_used_whole(tmp_path, spec_of):
    x, y = table(60)
    rows = [[*row, k] for row, k in zip(x, y)]
    write_csv(tmp_path / "train.csv", ["a", "b", "c", "y"], rows[:40])
    write_csv(tmp_path / "val.csv", ["a", "b", "c", "y"], rows[40:50])
    write_csv(tmp_path / "test.csv", ["a", "b", "c", "y"], rows[50:])
    b = load_data(spec_of({"path": "train.csv", "target": "y", "val_path": "val.csv", "test_path": "test.csv"}, [3], units=2),
                  base_dir=tmp_path)
    assert (len(b.train), len(b.val), len(b.test)) == (40, 10, 10)
    assert b.meta["split"]["val_from"] == "val_path" and b.meta["split"]["test_from"] == "test_path"


def test_relative_paths_resolve_against_the_spec_file(tmp_path):
    import layerforge as lf

    x, y = table()
    (tmp_path / "sub").mkdir()
    write_csv(tmp_path / "sub" / "t.csv", ["a", "b", "c", "y"], [[*row, k] for row, k in zip(x, y)])
    spec_file = tmp_path / "sub" / "spec.yaml"
    spec_file.write_text("model:\n  input_shape: [3]\n  layers:\n    - {type: dense, units: 2}\n"
                         "data:\n  path: t.csv\n  target: y\n")
    spec, _ = lf.load_spec(spec_file)
    assert len(load_data(spec).train) == 32


def test_npz_classification_regression_and_sequences(tmp_path, spec_of):
    r = np.random.default_rng(0)
    np.savez(tmp_path / "c.npz", x=r.normal(size=(50, 6)).astype(np.float32), y=r.integers(0, 4, 50))
    b = load_data(spec_of({"path": "c.npz"}, [6], units=4), base_dir=tmp_path)
    assert b.task == "classification" and b.num_classes == 4 and b.train.x.shape == (40, 6)
    np.savez(tmp_path / "r.npz", x=r.normal(size=(50, 6)), labels=r.normal(size=(50, 2)))
    b = load_data(spec_of({"path": "r.npz", "target": "labels"}, [6], units=2), base_dir=tmp_path)
    assert b.task == "regression" and b.train.y.shape == (40, 2) and b.train.x.dtype == torch.float32
    np.savez(tmp_path / "s.npz", x=r.normal(size=(50, 7, 3)), y=r.integers(0, 5, (50, 7)))
    layers = [{"type": "lstm", "units": 4, "return_sequences": True}, {"type": "dense", "units": 5}]
    b = load_data(spec_of({"path": "s.npz"}, [7, 3], layers), base_dir=tmp_path)
    assert b.task == "sequence" and b.train.y.shape == (40, 7) and b.num_classes == 5


def test_npz_feeds_a_model_with_several_named_inputs(tmp_path, spec_of):
    r = np.random.default_rng(0)
    np.savez(tmp_path / "m.npz", a=r.normal(size=(30, 3)), b=r.normal(size=(30, 2)), y=r.integers(0, 2, 30))
    layers = [{"type": "concat", "inputs": ["a", "b"]}, {"type": "dense", "units": 2}]
    b = load_data(spec_of({"path": "m.npz"}, {"a": [3], "b": [2]}, layers), base_dir=tmp_path)
    assert isinstance(b.train.x, dict) and set(b.train.x) == {"a", "b"}
    assert b.train.x["a"].shape == (24, 3) and b.input_shapes == {"a": (3,), "b": (2,)}
    xb, yb = next(b.train.batches(8))
    assert xb["b"].shape == (8, 2) and yb.shape == (8,)
    state = b.transform.state_dict()
    assert set(state["inputs"]) == {"a", "b"} and state["single"] is False


def test_npy_inputs_with_a_target_file(tmp_path, spec_of):
    r = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", r.normal(size=(20, 4)).astype(np.float32))
    np.save(tmp_path / "y.npy", r.integers(0, 3, 20))
    b = load_data(spec_of({"path": "x.npy", "target_path": "y.npy", "val": 0}, [4], units=3), base_dir=tmp_path)
    assert b.train.x.shape == (20, 4) and b.num_classes == 3


def make_image_folder(root: Path, classes: dict[str, int], size=(6, 5), mode="L", seed=0) -> Path:
    from PIL import Image

    r = np.random.default_rng(seed)
    for k, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True)
        for i in range(count):
            shape = size if mode == "L" else (*size, 3)
            arr = (r.random(shape) * 60 + k * 150).astype(np.uint8)
            Image.fromarray(arr, mode).save(root / name / f"{i}.png")
    return root


def test_image_folder_loads_classes_from_sub_folders(tmp_path, spec_of):
    make_image_folder(tmp_path / "imgs", {"bird": 6, "plane": 4})
    layers = [{"type": "flatten"}, {"type": "dense", "units": 2}]
    b = load_data(spec_of({"path": "imgs", "val": 0, "standardize": False}, [1, 6, 5], layers), base_dir=tmp_path)
    assert b.class_names == ["bird", "plane"] and b.train.x.shape == (10, 1, 6, 5)
    assert 0.0 <= float(b.train.x.min()) and float(b.train.x.max()) <= 1.0
    # class 1 images were drawn brighter: the labels follow the folders
    bright = b.train.x.mean(dim=(1, 2, 3)) > 0.5
    assert torch.equal(bright, b.train.y.bool())
    assert b.meta["image_size"] == [6, 5] and b.meta["channels"] == 1


def test_image_folder_resizes_and_converts_to_the_model_shape(tmp_path, spec_of):
    make_image_folder(tmp_path / "imgs", {"a": 3, "b": 3}, size=(12, 10), mode="RGB")
    layers = [{"type": "flatten"}, {"type": "dense", "units": 2}]
    b = load_data(spec_of({"path": "imgs", "val": 0}, [1, 8, 8], layers), base_dir=tmp_path)
    assert b.train.x.shape == (6, 1, 8, 8) and b.transform.state_dict()["inputs"][""]["shape"] == [1, 1, 1]
    b3 = load_data(spec_of({"path": "imgs", "val": 0, "image_size": [4, 4]}, [48], units=2), base_dir=tmp_path)
    assert b3.train.x.shape == (6, 48) and b3.meta["channels"] == 3


def test_text_file_is_a_character_language_model(tmp_path, spec_of):
    (tmp_path / "c.txt").write_text("abcab cabca bcabc " * 20)
    layers = [{"type": "embedding", "input_dim": 4, "output_dim": 3}, {"type": "dense", "units": 4}]
    b = load_data(spec_of({"path": "c.txt", "val": 0.25}, [9], layers), base_dir=tmp_path)
    assert b.meta["vocab"] == [" ", "a", "b", "c"] and b.num_classes == 4
    n = (360 - 1) // 9
    assert len(b.train) + len(b.val) == n and b.train.x.dtype == torch.int64
    decoded = "".join(b.meta["vocab"][i] for i in b.train.x[0].tolist())
    assert decoded == "abcab cab"


def test_num_samples_caps_a_file_and_shuffle_false_keeps_file_order(tmp_path, spec_of):
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    np.savez(tmp_path / "o.npz", x=x, y=np.arange(20) % 2)
    b = load_data(spec_of({"path": "o.npz", "shuffle": False, "standardize": False, "val": 0.25}, [2], units=2),
                  base_dir=tmp_path)
    assert torch.equal(b.train.x[:, 0], torch.arange(0, 30, 2, dtype=torch.float32))
    c = load_data(spec_of({"path": "o.npz", "num_samples": 8, "val": 0.25}, [2], units=2), base_dir=tmp_path)
    assert (len(c.train), len(c.val)) == (6, 2) and any("8 of 20" in n for n in c.meta["notes"])


def test_the_split_is_seeded(tmp_path, spec_of):
    x, y = table()
    np.savez(tmp_path / "t.npz", x=x, y=y)
    a = load_data(spec_of({"path": "t.npz"}, [3], units=2, seed=1), base_dir=tmp_path)
    b = load_data(spec_of({"path": "t.npz"}, [3], units=2, seed=1), base_dir=tmp_path)
    c = load_data(spec_of({"path": "t.npz"}, [3], units=2, seed=2), base_dir=tmp_path)
    assert torch.equal(a.val.x, b.val.x) and not torch.equal(a.val.x, c.val.x)


def test_meta_is_json_serialisable(tmp_path, spec_of):
    import json

    make_image_folder(tmp_path / "imgs", {"a": 2, "b": 2})
    for data, shape, units in [({"dataset": "iris"}, [4], 3), ({"path": "imgs", "val": 0}, [30], 2),
                               ({"dataset": "copy", "num_samples": 10}, [20, 10], 10)]:
        b = load_data(spec_of(data, shape, units=units), base_dir=tmp_path)
        json.dumps(b.meta)
        json.dumps(b.transform.state_dict())
