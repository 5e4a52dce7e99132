"""Every built-in dataset loads offline with the documented shapes, dtypes and class counts."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.data.conftest import load_data
from layerforge.data.builtin import data_dir

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_files_are_small_and_documented():
    files = [p for p in (ROOT / "data").rglob("*") if p.is_file() and p.suffix != ".py" and p.name != "README.md"]
    assert files, "data/ holds the shipped datasets"
    assert sum(p.stat().st_size for p in files) < 400_000
    readme = (ROOT / "data" / "README.md").read_text()
    for p in files:
        assert p.name in readme, f"data/README.md does not describe {p.name}"
    assert data_dir() == ROOT / "data"


def test_digits_are_1797_images_of_1x8x8_with_values_0_to_16():
    with np.load(ROOT / "data" / "digits.npz") as z:
        assert z["x"].shape == (1797, 1, 8, 8)
        assert z["x"].min() == 0 and z["x"].max() == 16
        assert sorted(set(z["y"].tolist())) == list(range(10))


@pytest.mark.parametrize("name,features,classes,rows", [
    ("iris", 4, 3, 150), ("wine", 13, 3, 178), ("breast_cancer", 30, 2, 569),
])
def test_tables_load_with_their_feature_count_and_classes(spec_of, name, features, classes, rows):
    b = load_data(spec_of({"dataset": name}, [features], units=classes))
    assert b.task == "classification" and b.num_classes == classes
    assert len(b.train) + len(b.val) == rows and len(b.val) == round(rows * 0.2)
    assert b.train.x.dtype == torch.float32 and b.train.x.shape[1:] == (features,)
    assert b.train.y.dtype == torch.int64 and b.train.y.shape == (len(b.train),)
    assert len(b.class_names) == classes and b.meta["class_names"] == b.class_names
    assert len(b.meta["features"]) == features
    with gzip.open(ROOT / "data" / f"{name}.csv.gz", "rt") as f:
        assert f.readline().strip().split(",")[:-1] == b.meta["features"]


def test_digits_load_as_images_for_a_cnn(spec_of):
    layers = [{"type": "conv2d", "filters": 4, "kernel_size": 3}, {"type": "flatten"}, {"type": "dense", "units": 10}]
    b = load_data(spec_of({"dataset": "digits"}, [1, 8, 8], layers))
    assert tuple(b.train.x.shape) == (1438, 1, 8, 8) and b.train.x.dtype == torch.float32
    assert b.num_classes == 10 and b.class_names == [str(i) for i in range(10)]
    assert b.meta["notes"] == []


def test_digits_reshape_to_64_features_for_an_mlp_and_say_so(spec_of):
    b = load_data(spec_of({"dataset": "digits"}, [64], units=10))
    assert tuple(b.train.x.shape[1:]) == (64,)
    assert any("reshaped" in n and "[1, 8, 8]" in n and "[64]" in n for n in b.meta["notes"])
    assert b.meta["input_encoding"] == {"input": "reshape"}


def test_shakespeare_is_a_character_language_model(spec_of):
    layers = [{"type": "embedding", "input_dim": 71, "output_dim": 8}, {"type": "lstm", "units": 8, "return_sequences": True},
              {"type": "dense", "units": 71}]
    b = load_data(spec_of({"dataset": "shakespeare"}, [32], layers))
    vocab = b.meta["vocab"]
    assert b.task == "language_model" and b.num_classes == len(vocab) == 71
    assert b.train.x.dtype == torch.int64 and tuple(b.train.x.shape[1:]) == (32,)
    assert b.train.y.shape == b.train.x.shape
    # y is x shifted by one character: window i's targets continue its inputs.
    assert torch.equal(b.train.x[0, 1:], b.train.y[0, :-1])
    text = "".join(vocab[i] for i in b.train.x[0].tolist())
    assert "Tempest" in text or "TEMPEST" in text.upper()
    assert b.meta["seq_len"] == 32 and b.transform.kind == "identity"
    # Splits are consecutive stretches of the text (no shuffling across them).
    assert b.meta["split"]["shuffled"] is False
    assert int(b.train.y[-1, -1]) == int(b.val.x[0, 0])


def test_generators_are_built_in(spec_of):
    b = load_data(spec_of({"dataset": "adding", "num_samples": 100, "seq_len": 20}, [20, 2],
                          [{"type": "lstm", "units": 4}, {"type": "dense", "units": 1}]))
    assert b.task == "regression" and tuple(b.train.x.shape) == (80, 20, 2) and b.train.y.dtype == torch.float32
    assert b.num_classes is None and b.class_names is None


def test_complete_examples_in_docs_load(root):
    """Each ```yaml block in docs/data.md with a full model and a built-in dataset validates and loads."""
    import re

    import yaml

    import layerforge as lf

    blocks = re.findall(r"```yaml\n(.*?)```", (root / "docs" / "data.md").read_text(), flags=re.S)
    ran = 0
    for block in blocks:
        doc = yaml.safe_load(block)
        model = doc.get("model", {}) if isinstance(doc, dict) else {}
        if not (isinstance(model.get("layers"), list) and all(isinstance(l, dict) for l in model["layers"])):
            continue
        if "dataset" not in doc.get("data", {}):
            continue
        if doc["data"]["dataset"] in ("adding", "copy", "sine", "parity"):
            doc["data"].setdefault("num_samples", 200)  # keep the test quick
        spec, _ = lf.spec_from_dict(doc)
        bundle = load_data(spec)
        assert len(bundle.train) > 0
        ran += 1
    assert ran >= 6  # iris, shakespeare and the four generators
