"""Exact resume: a run stopped (after an epoch, mid-epoch by Ctrl-C, or killed with SIGKILL) and resumed
from its run directory ends with bit-identical weights and metrics to an uninterrupted run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import layerforge as lf
from layerforge.engine.events import Callback
from layerforge.engine.rundir import TIMINGS

SPEC = """\
# Run: layerforge train spec.yaml
name: resume_me
seed: 7
model:
  input_shape: [4]
  layers:
    - {type: dense, units: 16, activation: relu}
    - {type: dropout, rate: 0.3}
    - {type: dense, units: 3}
data: {dataset: iris, val: 0.2}
train:
  epochs: 4
  batch_size: 16
  device: cpu
  plots: false
  optimizer: {name: adam, lr: 0.01}
  schedule: {name: cosine, warmup_steps: 3}
  metrics: [accuracy, f1]
"""


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(SPEC)
    return p


class StopAt(Callback):
    """Request a stop (what Ctrl-C does) at an epoch end, or after a given step."""

    def __init__(self, epoch: int, step: int | None = None) -> None:
        self.epoch, self.step = epoch, step

    def on_start(self, info) -> None:
        self.stop = info.request_stop

    def on_epoch_end(self, record, improved) -> None:
        if self.step is None and record["epoch"] == self.epoch:
            self.stop()

    def on_step(self, epoch, step, loss) -> None:
        if self.step is not None and (epoch, step) == (self.epoch, self.step):
            self.stop()


class SigintAt(Callback):
    """Send this process a real SIGINT after a given step (the trainer's handler turns it into a stop)."""

    def __init__(self, epoch: int, step: int) -> None:
        self.at = (epoch, step)

    def on_step(self, epoch, step, loss) -> None:
        if (epoch, step) == self.at:
            os.kill(os.getpid(), signal.SIGINT)


def weights(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / "checkpoints" / "last" / "model.safetensors"))


def records(run: Path) -> list[dict]:
    """metrics.jsonl epoch lines without the wall-clock fields (``rundir.TIMINGS``: they legitimately differ)."""
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in lines if not r.get("final")]


def assert_same_run(a: Path, b: Path) -> None:
    import torch

    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"weights differ in {k}"
    assert records(a) == records(b)


@pytest.fixture
def full_run(spec_file: Path, tmp_path: Path) -> Path:
    out = tmp_path / "full"
    result = lf.train(spec_file, out=out)
    assert result.status == "completed" and result.epochs_run == 4
    return out


def test_seeded_cpu_run_repeats_bit_for_bit(spec_file, tmp_path, full_run):
    lf.train(spec_file, out=tmp_path / "again")
    assert_same_run(full_run, tmp_path / "again")


def test_stop_after_epoch_then_resume_matches_uninterrupted_run(spec_file, tmp_path, full_run):
    out = tmp_path / "stopped"
    first = lf.train(spec_file, out=out, callbacks=[StopAt(2)])
    assert first.status == "interrupted" and first.epochs_run == 2
    resumed = lf.train(resume=out)
    assert resumed.status == "completed" and resumed.epochs_run == 4
    assert_same_run(full_run, out)


def test_ctrl_c_mid_epoch_saves_a_checkpoint_that_resumes_exactly(spec_file, tmp_path, full_run):
    out = tmp_path / "sigint"
    first = lf.train(spec_file, out=out, callbacks=[SigintAt(3, 2)])
    assert first.status == "interrupted" and first.epochs_run == 2
    manifest = json.loads((out / "checkpoints" / "last" / "manifest.json").read_text())
    assert manifest["step_in_epoch"] == 2
    lf.train(resume=out)
    assert_same_run(full_run, out)


KILL_SCRIPT = """
import os, signal, sys
import layerforge as lf
from layerforge.engine.events import Callback

class Kill(Callback):
    def on_step(self, epoch, step, loss):
        if (epoch, step) == (3, 4):
            os.kill(os.getpid(), signal.SIGKILL)

lf.train(sys.argv[1], out=sys.argv[2], callbacks=[Kill()])
"""


def test_sigkill_mid_epoch_resumes_from_last_completed_checkpoint(spec_file, tmp_path, full_run):
    out = tmp_path / "killed"
    r = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(spec_file), str(out)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    manifest = json.loads((out / "checkpoints" / "last" / "manifest.json").read_text())
    assert (manifest["epoch"], manifest["step_in_epoch"]) == (2, 0)
    resumed = lf.train(resume=out)
    assert resumed.epochs_run == 4
    assert_same_run(full_run, out)


def test_resume_can_extend_training_with_train_overrides(spec_file, tmp_path, full_run):
    result = lf.train(resume=full_run, overrides=["train.epochs=5"])
    assert result.epochs_run == 5 and len(records(full_run)) == 5


def test_resume_refuses_model_changes_and_finished_runs(spec_file, tmp_path, full_run):
    with pytest.raises(lf.LayerforgeError, match="only change train"):
        lf.train(resume=full_run, overrides=["model.layers.0.units=8"])
    with pytest.raises(lf.LayerforgeError, match="already finished its 4 epochs"):
        lf.train(resume=full_run)


def test_interrupted_swap_falls_back_to_the_previous_checkpoint(full_run):
    """A crash between 'last → .last.old' and 'tmp → last' leaves .last.old, which is used."""
    ck = full_run / "checkpoints"
    os.replace(ck / "last", ck / ".last.old")
    from layerforge.engine.checkpoint import verify

    assert verify(ck / "last")["epoch"] == 4
