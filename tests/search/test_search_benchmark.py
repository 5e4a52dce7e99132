"""benchmarks/search_digits.py still runs (its --smoke mode: 1 trial of 1 epoch per study, no claims about
the figures) and prints every table of docs/search.md, with a row for each study."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_search_digits_smoke_prints_the_baseline_every_study_and_the_sampler_comparison(tmp_path):
    pytest.importorskip("optuna")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "search_digits.py"), "--smoke", "--seeds", "0",
                           "--out", str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "| configs/cnn_digits.yaml (baseline) |" in out
    for study in ("tpe seed 0", "random seed 0"):
        assert f"| {study} |" in out
    assert "| tpe | " in out and "| random | " in out  # TPE against random at equal trials
    assert (tmp_path / "digits_pareto.png").is_file()
