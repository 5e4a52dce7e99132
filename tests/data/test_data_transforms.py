"""Standardisation is fitted on the training split only, saved as plain JSON, and re-applied by
load_inputs (predict) exactly as in training."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from layerforge.data import Standardize, Transform, load_inputs, load_split, transform_from_state
from tests.data.conftest import facts_of, load_data
from layerforge.data.transforms import stat_shape


def test_standardisation_uses_training_statistics_only(tmp_path, spec_of):
    r = np.random.default_rng(0)
    x = r.normal(loc=5.0, scale=3.0, size=(100, 2))
    np.savez(tmp_path / "d.npz", x=x, y=r.integers(0, 2, 100))
    b = load_data(spec_of({"path": "d.npz", "val": 0.3}, [2], units=2), base_dir=tmp_path)
    raw = load_data(spec_of({"path": "d.npz", "val": 0.3, "standardize": False}, [2], units=2), base_dir=tmp_path)
    tr = raw.train.x.double()
    state = b.transform.state_dict()
    assert np.allclose(state["inputs"][""]["mean"], tr.mean(0).numpy())
    assert np.allclose(state["inputs"][""]["std"], tr.std(0, unbiased=False).numpy())
    # The training split is exactly standardised; validation is not (it used train stats).
    assert torch.allclose(b.train.x.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(b.train.x.std(0, unbiased=False), torch.ones(2), atol=1e-4)
    assert not torch.allclose(b.val.x.mean(0), torch.zeros(2), atol=1e-3)
    expected_val = (raw.val.x.double() - torch.tensor(state["inputs"][""]["mean"])) / torch.tensor(state["inputs"][""]["std"])
    assert torch.allclose(b.val.x.double(), expected_val, atol=1e-5)


@pytest.mark.parametrize("sample,stat", [((4,), (4,)), ((7, 3), (1, 3)), ((3, 8, 8), (3, 1, 1)), ((2, 4, 5, 5), (2, 1, 1, 1))])
def test_statistics_are_per_feature_per_step_feature_or_per_channel(sample, stat):
    assert stat_shape(sample) == stat
    x = torch.randn(16, *sample) * 4 + 2
    t = Standardize().fit(x)
    assert t.state_dict()["inputs"][""]["shape"] == list(stat)
    y = t.apply(x)
    assert abs(float(y.mean())) < 1e-4


def test_a_constant_feature_becomes_zero_not_nan():
    x = torch.stack([torch.zeros(10), torch.arange(10.0)], dim=1)
    y = Standardize().fit(x).apply(x)
    assert torch.isfinite(y).all() and torch.all(y[:, 0] == 0)


def test_state_round_trips_through_json():
    x = torch.randn(20, 3, 4, 4)
    t = Standardize().fit(x)
    state = json.loads(json.dumps(t.state_dict()))
    again = transform_from_state(state)
    assert isinstance(again, Standardize) and torch.allclose(again.apply(x), t.apply(x))
    assert type(transform_from_state({"kind": "identity"})) is Transform
    assert type(transform_from_state(None)) is Transform


def test_integer_ids_are_never_standardised():
    ids = torch.randint(0, 5, (10, 6))
    t = Standardize().fit(ids)
    assert t.state_dict()["inputs"] == {} and torch.equal(t.apply(ids), ids)


def _saved(b):
    """What a run directory keeps: the transform state and meta, through JSON."""
    return json.loads(json.dumps(b.transform.state_dict())), json.loads(json.dumps(b.meta))


def test_load_inputs_applies_the_saved_transform_to_a_csv(tmp_path, spec_of):
    r = np.random.default_rng(1)
    x = r.normal(10, 2, size=(30, 3)).round(3)
    rows = "".join(f"{a},{b},{c},{'yes' if a > 10 else 'no'}\n" for a, b, c in x)
    (tmp_path / "train.csv").write_text("a,b,c,label\n" + rows)
    spec = spec_of({"path": "train.csv", "target": "label", "val": 0}, [3], units=2)
    b = load_data(spec, base_dir=tmp_path)
    state, meta = _saved(b)
    # the prediction file has the columns in another order, plus an id column, and no labels
    (tmp_path / "new.csv").write_text("id,c,b,a\n" + "".join(f"{i},{c},{bb},{a}\n" for i, (a, bb, c) in enumerate(x[:5])))
    xp, info = load_inputs(tmp_path / "new.csv", facts_of(spec), state, meta)
    assert torch.allclose(xp, b.transform.apply(torch.tensor(x[:5], dtype=torch.float32)), atol=1e-5)
    assert info["y"] is None and info["num_samples"] == 5 and info["row_names"][0] == "line 2"
    # a labelled file gives encoded targets (for evaluate --data)
    split = load_split(tmp_path / "train.csv", facts_of(spec), state, meta)
    assert split.y.tolist() == [b.class_names.index("yes" if a > 10 else "no") for a in x[:, 0]]


def test_load_inputs_for_digits_npy_reshapes_and_standardises(tmp_path, spec_of):
    spec = spec_of({"dataset": "digits"}, [64], units=10)
    b = load_data(spec, base_dir=tmp_path)
    state, meta = _saved(b)
    with np.load(__import__("layerforge.data.builtin", fromlist=["x"]).data_dir() / "digits.npz") as z:
        imgs = z["x"][:4].astype(np.float32)
    np.save(tmp_path / "four.npy", imgs)
    xp, info = load_inputs(tmp_path / "four.npy", facts_of(spec), state, meta)
    assert xp.shape == (4, 64) and any("reshaped" in n for n in info["notes"])
    assert torch.allclose(xp, b.transform.apply(torch.from_numpy(imgs.reshape(4, 64))))
    np.save(tmp_path / "one.npy", imgs[0].reshape(64))  # one sample without a batch axis
    one, _ = load_inputs(tmp_path / "one.npy", facts_of(spec), state, meta)
    assert one.shape == (1, 64) and torch.allclose(one, xp[:1])


def test_load_inputs_for_text_uses_the_training_vocabulary(tmp_path, spec_of):
    (tmp_path / "c.txt").write_text("hello world " * 30)
    layers = [{"type": "embedding", "input_dim": 8, "output_dim": 3}, {"type": "dense", "units": 8}]
    spec = spec_of({"path": "c.txt"}, [5], layers)
    b = load_data(spec, base_dir=tmp_path)
    state, meta = _saved(b)
    (tmp_path / "p.txt").write_text("world hello")
    xp, info = load_inputs(tmp_path / "p.txt", facts_of(spec), state, meta)
    vocab = meta["vocab"]
    assert xp.dtype == torch.int64 and xp.shape == (3, 5)  # prediction covers every character: the last window
    assert ["".join(vocab[i] for i in w) for w in xp.tolist()] == ["world", " hell", "hello"]  # overlaps
    assert info["y"] is None and info["row_names"] == ["chars 0–4", "chars 5–9", "chars 6–10"]
    xe, info = load_inputs(tmp_path / "p.txt", facts_of(spec), state, meta, targets=True)  # evaluation: (x, next) windows
    assert xe.shape == (2, 5) and info["y"] is not None


def test_load_inputs_for_images_uses_the_training_size(tmp_path, spec_of):
    from test_data_files import make_image_folder

    make_image_folder(tmp_path / "imgs", {"a": 3, "b": 3}, size=(8, 8))
    spec = spec_of({"path": "imgs", "val": 0}, [1, 4, 4], [{"type": "flatten"}, {"type": "dense", "units": 2}])
    b = load_data(spec, base_dir=tmp_path)
    state, meta = _saved(b)
    xp, info = load_inputs(tmp_path / "imgs" / "b" / "0.png", facts_of(spec), state, meta)
    assert xp.shape == (1, 1, 4, 4) and info["row_names"] == ["0.png"]
    folder, info = load_inputs(tmp_path / "imgs", facts_of(spec), state, meta)
    assert folder.shape == (6, 1, 4, 4) and info["y"].tolist() == [0, 0, 0, 1, 1, 1]


def test_load_inputs_one_hot_encodes_ids_like_training(tmp_path, spec_of):
    rnn = [{"type": "lstm", "units": 4, "return_sequences": True}, {"type": "dense", "units": 10}]
    spec = spec_of({"dataset": "copy", "num_samples": 20}, [20, 10], rnn)
    b = load_data(spec)
    state, meta = _saved(b)
    ids = b.train.x[:3].argmax(-1).numpy()
    np.savez(tmp_path / "ids.npz", x=ids)
    xp, info = load_inputs(tmp_path / "ids.npz", facts_of(spec), state, meta)
    assert torch.equal(xp, b.train.x[:3]) and info["y"] is None
