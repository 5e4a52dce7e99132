"""benchmarks/long_attention.py still runs (its --smoke mode: one short length, one round, no timing claims):
every method gets a row at every length, with time and memory columns."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_long_attention_smoke_prints_a_row_per_method_and_length():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "long_attention.py"), "--smoke"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split("|") for line in done.stdout.splitlines() if line.startswith("| 128 ")]
    methods = {r[2].strip() for r in rows}
    assert methods == {"dense SDPA (causal)", "masked (sliding)", "sliding", "dilated (r=2)", "strided (s=256)",
                       "block_local+16 global"}
    assert len(rows) == len(methods) and all(len(r) == 9 for r in rows)
