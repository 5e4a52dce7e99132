"""Variable-length sequences in the data section: ragged CSV and NPZ sources are padded with 0 to the
model's T with their lengths kept, batches are cut to their longest sequence (bucketed on request),
padded per-step targets are skipped by the loss and the metrics."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from layerforge.engine.metrics import EpochStats
from layerforge.engine.rules import Head
from layerforge.errors import DataError
from tests.data.conftest import load_data, make_spec

GRU = [{"type": "embedding", "input_dim": 10, "output_dim": 4, "mask_zero": True}, {"type": "gru", "units": 3},
       {"type": "dense", "units": 2}]


def write_csv(path, lengths: list[int]) -> list[list[int]]:
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 10, n).tolist() for n in lengths]
    path.write_text("tokens,label\n" + "".join(f"{' '.join(map(str, s))},{i % 2}\n" for i, s in enumerate(seqs)))
    return seqs


def test_csv_sequence_column_is_padded_with_zeros_and_keeps_lengths(tmp_path):
    seqs = write_csv(tmp_path / "s.csv", [3, 8, 1, 5])
    spec = make_spec({"path": "s.csv", "sequence_column": "tokens", "target": "label", "val": 0, "shuffle": False},
                     [8], GRU)
    b = load_data(spec, tmp_path)
    assert b.task == "sequence_classification" and b.train.lengths.tolist() == [3, 8, 1, 5]
    assert b.train.x.dtype == torch.int64 and b.train.x.shape == (4, 8)
    assert b.train.x[0].tolist() == seqs[0] + [0] * 5 and b.meta["lengths"]["max"] == 8


def test_each_batch_is_cut_to_its_longest_sequence(tmp_path):
    write_csv(tmp_path / "s.csv", [3, 2, 8, 1, 5, 2])
    spec = make_spec({"path": "s.csv", "sequence_column": "tokens", "target": "label", "val": 0, "shuffle": False},
                     [8], GRU)
    batches = list(load_data(spec, tmp_path).train.batches(2))
    assert [x.shape[1] for x, _ in batches] == [3, 8, 5]


def test_bucketed_batches_group_similar_lengths_and_cover_every_sample_once(tmp_path):
    lengths = [int(n) for n in np.random.default_rng(1).integers(1, 31, 64)]
    write_csv(tmp_path / "s.csv", lengths)
    spec = make_spec({"path": "s.csv", "sequence_column": "tokens", "target": "label", "val": 0, "bucket": True},
                     [30], GRU)
    split = load_data(spec, tmp_path).train
    g = torch.Generator().manual_seed(0)
    batches = list(split.batches(8, shuffle=True, generator=g))
    widths = [x.shape[1] for x, _ in batches]
    padded = sum(x.numel() - int((x != 0).sum()) for x, _ in batches)
    plain = list(split.batches(8, shuffle=False))
    padded_plain = sum(x.numel() - int((x != 0).sum()) for x, _ in plain)
    assert sum(int((x != 0).sum()) for x, _ in batches) == sum(lengths)  # every step of every sample once
    assert sum(len(y) for _, y in batches) == 64 and len(widths) == 8
    assert padded < padded_plain / 4  # sorted within the window: far less padding


def test_a_sequence_longer_than_the_model_is_a_data_error(tmp_path):
    write_csv(tmp_path / "s.csv", [3, 9])
    spec = make_spec({"path": "s.csv", "sequence_column": "tokens", "target": "label", "val": 0}, [8], GRU)
    with pytest.raises(DataError, match="line 3 has 9 steps, more than the model's 8"):
        load_data(spec, tmp_path)


def test_npz_lengths_zero_the_padding_and_mark_padded_step_targets(tmp_path):
    x = np.random.default_rng(0).integers(1, 10, (3, 6))
    y = np.ones((3, 6), dtype=np.int64)
    np.savez(tmp_path / "a.npz", x=x, y=y, n=np.array([6, 2, 4]))
    layers = [GRU[0], {"type": "lstm", "units": 3, "return_sequences": True}, {"type": "dense", "units": 2}]
    spec = make_spec({"path": "a.npz", "lengths": "n", "val": 0, "shuffle": False}, [6], layers)
    b = load_data(spec, tmp_path)
    assert (b.train.x[1, 2:] == 0).all() and (b.train.x[1, :2] == torch.from_numpy(x[1, :2])).all()
    assert b.train.y[1].tolist() == [1, 1, -100, -100, -100, -100]


def test_npz_lengths_must_name_an_array(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.ones((2, 4), dtype=np.int64), y=np.zeros(2, dtype=np.int64))
    spec = make_spec({"path": "a.npz", "lengths": "lens", "val": 0}, [4], GRU)
    with pytest.raises(DataError, match="no array 'lens'"):
        load_data(spec, tmp_path)


def test_loss_and_accuracy_skip_padded_step_targets():
    logits = torch.tensor([[[2.0, 0.0], [0.0, 2.0], [5.0, 0.0]]])  # (1, 3 steps, 2 classes)
    y = torch.tensor([[0, 1, -100]])  # the last step is padding (its logits would be scored wrong)
    loss = F.cross_entropy(logits.reshape(-1, 2), y.reshape(-1))
    assert loss == pytest.approx(F.cross_entropy(logits[0, :2], y[0, :2]).item())
    stats = EpochStats(Head("class", (3, 2), 2, "cross_entropy"), ["accuracy", "f1"], 1, torch.device("cpu"), True)
    stats.update(logits, y, loss)
    assert stats.compute()["accuracy"] == 1.0
    y_bad = torch.tensor([[0, 0, -100]])
    stats.reset()
    stats.update(logits, y_bad, loss)
    assert stats.compute()["accuracy"] == 0.5


def test_evaluate_data_file_keeps_the_training_lengths_array(tmp_path):
    from layerforge.data.inputs import load_split
    from tests.data.conftest import facts_of

    np.savez(tmp_path / "a.npz", x=np.full((2, 5), 3), y=np.ones((2, 5), dtype=np.int64), n=np.array([5, 2]))
    layers = [GRU[0], {"type": "gru", "units": 3, "return_sequences": True}, {"type": "dense", "units": 2}]
    spec = make_spec({"path": "a.npz", "lengths": "n", "val": 0}, [5], layers)
    meta = {"source": "npz", "lengths_array": "n", "task": "sequence", "num_classes": 2}
    split = load_split(tmp_path / "a.npz", facts_of(spec), None, meta)
    assert split.lengths.tolist() == [5, 2] and split.x[1].tolist() == [3, 3, 0, 0, 0]
    assert split.y[1].tolist() == [1, 1, -100, -100, -100]


def test_padding_pre_puts_the_steps_at_the_end_and_cuts_batches_from_the_end(tmp_path):
    seqs = write_csv(tmp_path / "s.csv", [3, 8, 1, 5])
    spec = make_spec({"path": "s.csv", "sequence_column": "tokens", "target": "label", "val": 0, "shuffle": False,
                      "padding": "pre"}, [8], GRU)
    b = load_data(spec, tmp_path)
    assert b.train.x[0].tolist() == [0] * 5 + seqs[0] and b.meta["padding"] == "pre"
    x, _ = next(b.train.batches(1))
    assert x.tolist() == [seqs[0]]  # cut to its 3 steps, from the end


def test_npz_padding_pre_keeps_the_last_steps_and_marks_the_first_targets(tmp_path):
    x = np.random.default_rng(0).integers(1, 10, (2, 5))
    np.savez(tmp_path / "a.npz", x=x, y=np.ones((2, 5), dtype=np.int64), n=np.array([5, 2]))
    layers = [GRU[0], {"type": "gru", "units": 3, "return_sequences": True}, {"type": "dense", "units": 2}]
    spec = make_spec({"path": "a.npz", "lengths": "n", "val": 0, "shuffle": False, "padding": "pre"}, [5], layers)
    b = load_data(spec, tmp_path)
    assert b.train.x[1].tolist() == [0, 0, 0, *x[1, 3:].tolist()]
    assert b.train.y[1].tolist() == [-100, -100, -100, 1, 1]
