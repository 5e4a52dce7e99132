"""Experiment logs: TensorBoard event files (read back with a TFRecord reader that checks every CRC and
applies TensorBoard's purge rule) hold each epoch's metrics, the per-batch losses, the spec and the
hyperparameters with the final metrics; metrics.csv equals metrics.jsonl, also across a resume."""
from __future__ import annotations

import csv
import json
import struct
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import layerforge as lf
from layerforge.engine.events import Callback
from tests.engine.engine_helpers import class_bundle, mlp_spec
from tests.helpers import run_cli

STEPS = 8  # 120 samples in batches of 16: 7 full batches and one of 8
SIZES = [16] * 7 + [8]


def _masked_crc(data: bytes) -> int:
    from tensorboardX.crc32c import crc32c

    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_events(folder: Path) -> list:
    """Every event of the folder's event files (oldest first), each record's CRCs checked (TFRecord format:
    length u64, masked crc32c of the length, data, masked crc32c of the data)."""
    from tensorboardX.proto.event_pb2 import Event

    events = []
    for f in sorted(folder.glob("events.out.tfevents.*")):
        data, i = f.read_bytes(), 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i:i + 8])
            assert struct.unpack("<I", data[i + 8:i + 12])[0] == _masked_crc(data[i:i + 8])
            body = data[i + 12:i + 12 + n]
            assert struct.unpack("<I", data[i + 12 + n:i + 16 + n])[0] == _masked_crc(body)
            ev = Event()
            ev.ParseFromString(body)
            events.append(ev)
            i += 16 + n
    return events


def scalars(folder: Path) -> dict[str, dict[int, float]]:
    """tag → {step: value}, as TensorBoard shows them: a session restart at step s (a resumed run) drops
    what was logged at steps ≥ s before it."""
    from tensorboardX.proto.event_pb2 import SessionLog

    out: dict[str, dict[int, float]] = defaultdict(dict)
    for ev in read_events(folder):
        if ev.HasField("session_log") and ev.session_log.status == SessionLog.START:
            for values in out.values():
                for s in [s for s in values if s >= ev.step]:
                    del values[s]
        for v in ev.summary.value:
            if v.HasField("simple_value"):
                assert ev.step not in out[v.tag], f"{v.tag} logged twice at step {ev.step}"
                out[v.tag][ev.step] = v.simple_value
    return out


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: json.loads(v) for k, v in row.items()} for row in csv.DictReader(f)]


def test_tensorboard_and_csv_hold_every_epoch_step_spec_and_hparams(tmp_path):
    res = lf.train(mlp_spec(epochs=3, log=["tensorboard", "csv"]), data=class_bundle(), out=tmp_path / "run")
    run = tmp_path / "run"
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][:-1]
    assert read_csv(run / "metrics.csv") == epochs

    tb = scalars(run / "tensorboard")
    for rec in epochs:
        for key, tag in (("loss", "train/loss"), ("val_accuracy", "val/accuracy"), ("f1", "train/f1"), ("lr", "run/lr")):
            assert tb[tag][rec["step"]] == pytest.approx(rec[key], rel=1e-6)  # float32 in the event file
    steps = tb["train/loss_step"]
    assert sorted(steps) == list(range(1, 3 * STEPS + 1))
    for rec in epochs:  # each epoch's loss is its batches' losses weighted by batch size
        first = rec["step"] - STEPS
        mean = sum(steps[first + i + 1] * n for i, n in enumerate(SIZES)) / sum(SIZES)
        assert mean == pytest.approx(rec["loss"], rel=1e-5)

    texts = [v.tensor.string_val[0].decode() for ev in read_events(run / "tensorboard") for v in ev.summary.value
             if v.tag.startswith("spec")]
    assert texts and "units: 16" in texts[0]
    hp_events = read_events(run / "tensorboard" / "hparams")
    plugin = b"".join(v.metadata.plugin_data.content for ev in hp_events for v in ev.summary.value
                      if v.metadata.plugin_data.plugin_name == "hparams")
    assert b"train.optimizer.lr" in plugin and b"model.layers.0.units" in plugin and b"best/val_accuracy" in plugin
    hp = scalars(run / "tensorboard" / "hparams")
    assert hp["best/val_accuracy"][epochs[-1]["step"]] == pytest.approx(res.best["val_accuracy"], rel=1e-6)
    assert hp["last/loss"][epochs[-1]["step"]] == pytest.approx(res.last["loss"], rel=1e-6)


class StopAfter(Callback):
    """Leaves training at once after epoch ``n`` is recorded (as a second Ctrl-C would): metrics.jsonl and the
    event file then hold an epoch that no checkpoint holds."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_epoch_end(self, record, improved):
        if record["epoch"] == self.n:
            raise KeyboardInterrupt


def test_a_resumed_run_logs_each_epoch_once(tmp_path):
    run = tmp_path / "run"
    spec = mlp_spec(epochs=3, log=["tensorboard", "csv"], checkpoint_every=2)
    spec["data"] = {"dataset": "iris", "val": 0.2}
    spec["model"]["input_shape"] = [4]
    with pytest.raises(KeyboardInterrupt):
        lf.train(spec, out=run, callbacks=[StopAfter(3)])  # checkpoints/last holds epoch 2
    lf.train(resume=run, overrides=["train.epochs=4"])
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
              if not json.loads(line).get("final")]
    assert [r["epoch"] for r in epochs] == [1, 2, 3, 4]
    assert read_csv(run / "metrics.csv") == epochs
    tb = scalars(run / "tensorboard")
    assert sorted(tb["run/epoch"].values()) == [1, 2, 3, 4]
    assert [tb["train/loss"][r["step"]] for r in epochs] == pytest.approx([r["loss"] for r in epochs], rel=1e-6)
    assert len(tb["train/loss_step"]) == epochs[-1]["step"]


def test_missing_tensorboardx_names_the_extra_before_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(lf.MissingExtraError, match=r"tensorboardX") as e:
        lf.train(mlp_spec(log="tensorboard"), data=class_bundle(), out=tmp_path / "run")
    assert 'layerforge[logs]' in e.value.hint
    assert not (tmp_path / "run").exists()


def test_train_log_option_on_the_command_line(tmp_path, capsys):
    r = run_cli(capsys, "train", "configs/mlp_iris.yaml", "--set", "train.epochs=2", "--set", "train.plots=false",
                "--log", "csv", "--log", "tensorboard", "--out", str(tmp_path / "run"), "--quiet")
    assert r.code == 0, r.err
    assert len(read_csv(tmp_path / "run" / "metrics.csv")) == 2
    assert sorted(scalars(tmp_path / "run" / "tensorboard")["val/loss"]) == [8, 16]
    r = run_cli(capsys, "train", "configs/mlp_iris.yaml", "--log", "tensorbord", "--out", str(tmp_path / "bad"))
    assert r.code == 2 and "did you mean 'tensorboard'" in r.err
