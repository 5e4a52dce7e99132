"""The benchmark scripts still run: each one in its tiny ``--smoke`` mode (a few steps, no timing claims).

The figures they print are not checked (timing on a shared machine is noise at this size); what is checked
is that every model, variant and layer type still gets its row, so a change in the library that breaks a
benchmark fails here rather than on the day someone reruns docs/benchmarks.md.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--smoke", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_train_overhead_smoke_prints_every_model_against_both_plain_loops_and_the_startup_table():
    out = _run("train_overhead.py")
    header = next(line for line in out.splitlines() if line.startswith("| model | steps"))
    for column in ("(a) layerforge defaults", "(a') layerforge, steps only", "(a0) layerforge, fast: false",
                   "(b) plain loop as users write it", "(b') plain loop, same settings", "(a) ÷ (b′)", "(c) DataLoader"):
        assert column in header
    buys = next(line for line in out.splitlines() if line.startswith("| model | (b′) uses"))
    assert "fused Adam: (b) ÷ (bf)" in buys and "channels-last: (b) ÷ (bl)" in buys
    for label in ("MLP 64-256-256-10", "CNN conv32-conv64-pool-dense", "LSTM(8→64) T=50"):
        rows = [line for line in out.splitlines() if line.startswith(f"| {label} |")]
        assert len(rows) == 2 and "(1.00×)" in rows[0]  # the plain loop's own ratio: every row has its baseline
    cnn = [line for line in out.splitlines() if line.startswith("| CNN")][1]
    assert "fused Adam, channels-last" in cnn and "–" not in cnn  # both ablations ran for the CNN
    assert "conditions: torch" in out and "torch threads" in out and "load average" in out
    assert "layerforge's own" in out


def test_eval_cost_prints_a_row_per_config_with_its_validation_share():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "eval_cost.py"), "--configs", "mlp_iris",
                           "--epochs", "2"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    row = next(line for line in done.stdout.splitlines() if line.startswith("| `mlp_iris`"))
    assert "120 / 30" in row and row.count("%") == 2


def test_flop_counts_smoke_lists_every_registered_layer_type_with_both_counts():
    from layerforge.layers.registry import registry

    out = _run("flop_counts.py")
    rows = {line.split("|")[1].strip().strip("`"): line for line in out.splitlines() if line.startswith("| `")}
    assert set(rows) == set(registry())
    assert "FlopCounterMode, as built, misses matmul FLOPs in:" in out
    # like for like: layerforge's matmul/conv terms equal torch's count with every matmul visible
    for name in ("dense", "conv2d", "lstm", "gru", "multi_head_attention"):
        assert rows[name].split("|")[7].strip() == "1.00", rows[name]


def test_quantum_layers_smoke_prints_the_tt_and_hybrid_tables():
    out = _run("quantum_layers.py")
    assert "| dense 256→256 | 65,792 | 1.0× |" in out and "| tt_dense, rank 2 | 576 | 114.2× |" in out
    assert "| hybrid: dense 4→4, 4-qubit circuit (2 layers), dense 4→3 | 59 |" in out and "| dense MLP 4-7-3 | 59 |" in out


def test_recurrent_paths_smoke_prints_every_variant_against_its_fused_baseline():
    out = _run("recurrent_paths.py")
    for label in ("LSTM fused", "LSTM recurrent_dropout: 0.2 (loop)", "GRU reset_after: false (loop)"):
        row = next(line for line in out.splitlines() if line.startswith(f"| {label} |"))
        assert row.count("×") == 2
