"""The rough edges a new user hit, one CLI test each: whole run ids in `runs`, tabs in YAML, `--debug`
anywhere (and LAYERFORGE_DEBUG), shell completion, hints that say what is true, `inspect --format tree` at
80 columns, and no `<bool>` after flags in `--help`. (Predict's column names: tests/cli/test_train_cli.py;
errors in file order: tests/spec/test_validate_rules.py.)"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from rich.console import Console

from layerforge.errors import SpecError
from tests.cli.test_startup import COMMANDS, PROBE
from tests.helpers import run_cli, write_spec

LONG = ["cnn_digits_with_a_rather_long_experiment_name/2026-11-29_22-03-11",
        "cnn_digits_with_a_rather_long_experiment_name/2026-11-29_22-03-11-2"]


def _fake_runs(root):
    """Two finished runs with long ids (written by hand: `runs` reads only these files)."""
    for i, rid in enumerate(LONG):
        d = root / rid
        d.mkdir(parents=True)
        (d / "spec.yaml").write_text("name: x\n")
        (d / "run.json").write_text(json.dumps({"name": "x", "created": f"2026-11-29T22:03:1{i}", "status": "completed"}))
        recs = [{"epoch": 1, "loss": 0.5, "accuracy": 0.91, "f1": 0.9, "val_loss": 0.4, "val_accuracy": 0.93, "val_f1": 0.92},
                {"final": True, "best_epoch": 1, "monitor": "val_loss", "time_s": 1.5}]
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))


def test_runs_never_cuts_run_ids_piped_or_at_80_columns(tmp_path, capsys, monkeypatch):
    _fake_runs(tmp_path)
    r = run_cli(capsys, "runs", str(tmp_path))  # not a terminal: the table keeps its natural width
    assert r.code == 0, r.err
    for rid in LONG:
        assert any(rid in line for line in r.out.splitlines()), r.out
    assert "hidden" not in r.out and "accuracy" in r.out and "f1" in r.out  # every column, uncut

    from layerforge.cli import render

    buf = io.StringIO()
    monkeypatch.setattr(render, "console", Console(file=buf, width=80, force_terminal=True, color_system=None))
    r = run_cli(capsys, "runs", str(tmp_path))
    lines = buf.getvalue().splitlines()
    assert r.code == 0 and all(len(line) <= 80 for line in lines), buf.getvalue()
    for rid in LONG:
        assert any(rid in line for line in lines), buf.getvalue()  # whole, on one line
    assert "hidden to fit 80 columns" in buf.getvalue()  # the other columns gave way, and it says so


def test_a_tab_in_yaml_says_tabs_are_not_allowed_and_where(tmp_path, capsys):
    path = write_spec(tmp_path, "model:\n  input_shape: [8]\n  layers:\n\t- {type: dense, units: 3}\n")
    r = run_cli(capsys, "validate", str(path))
    assert r.code == 2 and "spec.yaml:4:1" in r.err and "tabs are not allowed" in r.err, r.err
    assert "fix the YAML syntax" not in r.err


@pytest.mark.parametrize("where", ["before", "after", "env"])
def test_debug_works_anywhere_on_the_command_line_and_from_the_environment(where, tmp_path, capsys, monkeypatch):
    path = str(write_spec(tmp_path, "model:\n  input_shape: [8]\n  layers:\n    - {type: dense}\n"))
    argv = {"before": ["--debug", "validate", path], "after": ["validate", path, "--debug"], "env": ["validate", path]}[where]
    if where == "env":
        monkeypatch.setenv("LAYERFORGE_DEBUG", "1")
    with pytest.raises(SpecError):
        run_cli(capsys, *argv)
    monkeypatch.delenv("LAYERFORGE_DEBUG", raising=False)
    assert run_cli(capsys, "validate", path).code == 2  # without it: a clean message


def test_shell_completion_is_on_and_stays_torch_free():
    env = {**os.environ, "_LAYERFORGE_COMPLETE": "complete_bash", "COMP_WORDS": "layerforge va", "COMP_CWORD": "1"}
    r = subprocess.run([sys.executable, "-c", PROBE.format(argv=[])], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "validate" in r.stdout and "HEAVY=\n" in r.stdout, r.stdout
    # --show-completion detects the shell from the parent process: run it from bash, as a user would.
    r = subprocess.run(["bash", "-c", f"'{sys.executable}' -m layerforge --show-completion"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "_LAYERFORGE_COMPLETE" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "layerforge", "--help"], capture_output=True, text=True, timeout=120)
    assert "--install-completion" in r.stdout


def test_a_missing_column_t29_suggests_no_other_numbered_column(tmp_path, capsys):
    (tmp_path / "t.csv").write_text(",".join(f"t{i}" for i in range(29)) + ",y\n" + ",".join(["1"] * 30) + "\n")
    features = "[" + ", ".join(f"t{i}" for i in range(30)) + "]"
    path = write_spec(tmp_path, f"model:\n  input_shape: [30]\n  layers:\n    - {{type: dense, units: 2}}\n"
                                f"data: {{path: t.csv, target: y, features: {features}}}\n")
    r = run_cli(capsys, "validate", str(path))
    assert r.code == 2 and "no column 't29'" in r.err, r.err
    assert "did you mean" not in r.err and "'t28'" not in r.err and "'t9'" not in r.err


def test_close_matches_are_offered_and_far_ones_are_not():
    from layerforge.text import close_matches

    assert close_matches("t29", ["t9", "t2", "t28", "label"]) == []
    assert close_matches("dense_3", ["dense_1", "dense_2"]) == []
    assert close_matches("val_acuracy", ["loss", "accuracy", "val_loss", "val_accuracy"]) == ["val_accuracy"]
    assert close_matches("unit", ["units", "activation", "use_bias"]) == ["units"]
    assert close_matches("Y", ["x", "y"]) == ["y"]
    assert close_matches("conv_1", ["conv1", "conv2", "conv3"]) == ["conv1"]
    assert close_matches("bb", ["a", "b", "c", "y"]) == ["b"]


def test_inspect_tree_fits_80_columns(root, capsys, monkeypatch):
    from layerforge.cli import render

    for config, layers in (("configs/transformer_copy.yaml", 13), ("configs/cross_attention_lookup.yaml", 4)):
        buf = io.StringIO()
        monkeypatch.setattr(render, "console", Console(file=buf, width=80, color_system=None))
        r = run_cli(capsys, "inspect", str(root / config), "--format", "tree")
        lines = buf.getvalue().splitlines()
        assert r.code == 0 and all(len(line) <= 80 for line in lines), buf.getvalue()
        layer_lines = [line for line in lines if " params" in line and "→" in line]
        assert len(layer_lines) == layers, buf.getvalue()  # each layer once, on one line
    assert "res1 (add) ← pos, attn1 →" in buf.getvalue() or "lookup (multi_head_attention) ← query, memory" in buf.getvalue()


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_no_type_after_flags(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    r = run_cli(capsys, *([command] if command else []), "--help")
    assert r.code == 0 and "Usage" in r.out
    assert "<bool>" not in r.out and "<list[str]>" not in r.out, r.out
