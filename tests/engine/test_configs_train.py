"""Every shipped example (configs/**/*.yaml) trains end to end through the CLI for one short epoch
(shrunk with --set), leaving a complete run directory that evaluates and predicts."""
from __future__ import annotations

import json

import pytest

from tests.conftest import CONFIGS, ROOT
from tests.helpers import run_cli

SHRINK = ["--set", "train.epochs=1", "--set", "data.num_samples=160", "--set", "train.plots=false"]
# Long-context examples: fewer windows still (a few optimizer steps), so one epoch stays short.
SHRINK_MORE = {"char_sparse_shakespeare": ["--set", "data.num_samples=12", "--set", "train.batch_size=4"]}


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(ROOT)) for p in CONFIGS])
def test_example_trains_for_one_short_epoch(path, tmp_path, capsys):
    out = tmp_path / "run"
    r = run_cli(capsys, "train", str(path), *SHRINK, *SHRINK_MORE.get(path.stem, []), "--out", str(out), "--json")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    assert result["status"] in ("completed", "early_stopped") and result["epochs_run"] == 1
    for name in ("spec.yaml", "run.json", "environment.json", "metrics.jsonl", "data.json", "transform.json",
                 "checkpoints/last/model.safetensors", "checkpoints/best/manifest.json"):
        assert (out / name).exists(), name
    assert all(isinstance(v, float) for k, v in result["last"].items() if k not in ("epoch", "step"))


@pytest.mark.slow
def test_readme_main_job_cnn_digits_reaches_95_percent(tmp_path, capsys):
    """The README's main job: the digits CNN, as shipped (the time it took is printed, not asserted)."""
    r = run_cli(capsys, "train", str(ROOT / "configs" / "cnn_digits.yaml"), "--out", str(tmp_path / "run"), "--json",
                "--set", "train.plots=false")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    print(f"cnn_digits: best val_accuracy {result['best']['val_accuracy']:.4f} in {result['time_s']:.1f}s")
    assert result["best"]["val_accuracy"] >= 0.95
