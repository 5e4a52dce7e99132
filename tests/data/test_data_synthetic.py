"""The seeded sequence generators: same seed → same data, and each task's answer is what it claims."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.data.conftest import load_data
from layerforge.data import synthetic


@pytest.mark.parametrize("name,task", [("adding", "regression"), ("copy", "sequence"), ("sine", "regression"),
                                       ("sine", "sequence"), ("parity", "sequence_classification"), ("parity", "sequence")])
def test_same_seed_gives_the_same_arrays_and_another_seed_does_not(name, task):
    a = synthetic.generate(name, seed=3, num_samples=64, seq_len=24, task=task)
    b = synthetic.generate(name, seed=3, num_samples=64, seq_len=24, task=task)
    c = synthetic.generate(name, seed=4, num_samples=64, seq_len=24, task=task)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_adding_marks_two_values_and_always_predicting_the_mean_scores_about_0_167():
    x, y = synthetic.generate("adding", seed=0, num_samples=20_000, seq_len=50, task="regression")
    assert x.shape == (20_000, 50, 2) and x.dtype == np.float32 and y.shape == (20_000,)
    assert np.all(x[:, :, 1].sum(axis=1) == 2)  # exactly two markers ...
    assert np.all(x[:, :25, 1].sum(axis=1) == 1)  # ... one in each half
    assert np.allclose((x[:, :, 0] * x[:, :, 1]).sum(axis=1), y, atol=1e-6)
    mse_of_mean = float(((y - y.mean()) ** 2).mean())
    print(f"adding T=50: always-predict-mean MSE = {mse_of_mean:.4f} (theory 1/6 = 0.1667)")
    assert abs(mse_of_mean - 1 / 6) < 0.005


def test_copy_targets_repeat_the_first_symbols_after_the_delimiter():
    x, y = synthetic.generate("copy", seed=0, num_samples=50, seq_len=20, task="sequence", copy_len=5)
    assert x.shape == y.shape == (50, 20) and x.dtype == y.dtype == np.int64
    assert np.all((x[:, :5] >= 1) & (x[:, :5] <= 8))
    assert np.all(x[:, 14] == 9) and np.all(x[:, 5:14] == 0) and np.all(x[:, 15:] == 0)
    assert np.array_equal(y[:, 15:], x[:, :5]) and np.all(y[:, :15] == 0)


def test_parity_labels_count_ones():
    x, y = synthetic.generate("parity", seed=1, num_samples=200, seq_len=16, task="sequence_classification")
    assert np.array_equal(y, x[:, :, 0].sum(axis=1).astype(int) % 2)
    _, ys = synthetic.generate("parity", seed=1, num_samples=200, seq_len=16, task="sequence")
    assert np.array_equal(ys[:, -1], y) and ys.shape == (200, 16)


def test_sine_forecast_targets_are_the_next_clean_value():
    x, y = synthetic.generate("sine", seed=2, num_samples=100, seq_len=30, task="regression", noise=0.0)
    _, ys = synthetic.generate("sine", seed=2, num_samples=100, seq_len=30, task="sequence", noise=0.0)
    assert x.shape == (100, 30, 1) and y.shape == (100,) and ys.shape == (100, 30, 1)
    assert np.allclose(ys[:, :-1, 0], x[:, 1:, 0], atol=1e-6)  # without noise, step t's target is input t+1
    assert np.allclose(ys[:, -1, 0], y)
    noisy, _ = synthetic.generate("sine", seed=2, num_samples=100, seq_len=30, task="regression", noise=0.1)
    assert 0.08 < float(np.std(noisy - x)) < 0.12


def test_generators_are_seeded_by_the_spec_seed_and_take_seq_len_from_the_model(spec_of):
    layers = [{"type": "gru", "units": 4}, {"type": "dense", "units": 1}]
    a = load_data(spec_of({"dataset": "adding", "num_samples": 200}, [30, 2], layers, seed=7))
    b = load_data(spec_of({"dataset": "adding", "num_samples": 200}, [30, 2], layers, seed=7))
    c = load_data(spec_of({"dataset": "adding", "num_samples": 200}, [30, 2], layers, seed=8))
    assert a.meta["seq_len"] == 30 and tuple(a.train.x.shape) == (160, 30, 2)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.val.y, b.val.y)
    assert not torch.equal(a.train.x, c.train.x)
    assert a.transform.kind == "identity"  # generated sequences are not standardised by default


def test_copy_ids_feed_an_embedding_or_are_one_hot_encoded_for_a_recurrent_input(spec_of):
    rnn = [{"type": "lstm", "units": 8, "return_sequences": True}, {"type": "dense", "units": 10}]
    onehot = load_data(spec_of({"dataset": "copy", "num_samples": 40}, [20, 10], rnn))
    assert onehot.train.x.dtype == torch.float32 and tuple(onehot.train.x.shape[1:]) == (20, 10)
    assert torch.all(onehot.train.x.sum(-1) == 1)
    assert onehot.meta["input_encoding"] == {"input": "onehot"} and onehot.num_classes == 10
    ids = load_data(spec_of({"dataset": "copy", "num_samples": 40}, [20],
                            [{"type": "embedding", "input_dim": 10, "output_dim": 4}, *rnn]))
    assert ids.train.x.dtype == torch.int64 and torch.equal(ids.train.x, onehot.train.x.argmax(-1))
