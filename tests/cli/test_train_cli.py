"""`layerforge train / evaluate / predict / runs` as a user sees them: plain lines when not a terminal,
Rich progress on one, --json and --quiet for scripts, exit code 2 for mistakes, 130 after Ctrl-C."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import run_cli, write_spec

SPEC = """
# Run: layerforge train spec.yaml
name: iris_cli
seed: 0
model:
  input_shape: [4]
  layers:
    - {type: dense, units: 16, activation: relu}
    - {type: dense, units: 3}
data: {dataset: iris, val: 0.2, test: 0.2}
train: {epochs: 3, batch_size: 16, device: cpu, plots: false, optimizer: {name: adam, lr: 0.02}, metrics: [accuracy, f1]}
"""
ANSI = re.compile(r"\x1b\[")


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    return write_spec(tmp_path, SPEC)


@pytest.fixture
def run_dir(spec: Path, tmp_path: Path, capsys) -> Path:
    out = tmp_path / "runs" / "one"
    r = run_cli(capsys, "train", str(spec), "--out", str(out), "--quiet")
    assert r.code == 0, r.err
    return out


def test_non_tty_output_is_one_plain_line_per_epoch(spec, tmp_path, capsys):
    r = run_cli(capsys, "train", str(spec), "--out", str(tmp_path / "run"))
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    epoch_lines = [l for l in lines if l.startswith("epoch ")]
    assert [l.split()[1] for l in epoch_lines] == ["1/3", "2/3", "3/3"]
    for l in epoch_lines:
        assert re.search(r"loss [\d.e-]+ +accuracy [\d.]+ +f1 [\d.]+ +val_loss [\d.e-]+", l), l
    assert lines[0].startswith("Training iris_cli: ") and "on cpu (fp32)" in lines[0]
    assert any(l.startswith("finished after 3 epochs") for l in lines)
    assert any(l == f"run saved to {tmp_path / 'run'}" for l in lines)
    assert not ANSI.search(r.out) and "\r" not in r.out


def test_json_prints_only_the_result(spec, tmp_path, capsys):
    r = run_cli(capsys, "train", str(spec), "--out", str(tmp_path / "run"), "--json", "--set", "train.epochs=2")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    assert result["status"] == "completed" and result["epochs_run"] == 2
    assert result["run_dir"] == str(tmp_path / "run") and result["best"]["epoch"] == result["best_epoch"]


def test_quiet_prints_only_the_run_directory(run_dir, capsys):
    assert run_dir.is_dir()
    metrics = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m.get("epoch") for m in metrics[:-1]] == [1, 2, 3] and metrics[-1]["final"] is True
    assert (run_dir / "spec.yaml").read_text().startswith("name: iris_cli")


def test_default_run_directory_is_runs_name_timestamp(spec, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run_cli(capsys, "train", str(spec), "--quiet", "--set", "train.epochs=1")
    assert r.code == 0, r.err
    path = Path(r.out.strip())
    assert path.parent == Path("runs") / "iris_cli" and re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d(-\d+)?", path.name)


def test_set_overrides_are_saved_in_the_resolved_spec(spec, tmp_path, capsys):
    out = tmp_path / "run"
    r = run_cli(capsys, "train", str(spec), "--out", str(out), "-q", "--set", "train.epochs=1",
                "--set", "model.layers.0.units=8")
    assert r.code == 0, r.err
    import yaml

    saved = yaml.safe_load((out / "spec.yaml").read_text())
    assert saved["train"]["epochs"] == 1 and saved["model"]["layers"][0]["units"] == 8


def test_resume_continues_from_the_run_directory(run_dir, capsys):
    r = run_cli(capsys, "train", "--resume", str(run_dir), "--set", "train.epochs=4")
    assert r.code == 0, r.err
    assert "Resuming iris_cli from epoch 4" in r.out and "epoch 4/4" in r.out


def test_evaluate_shows_metrics_and_confusion_matrix(run_dir, capsys):
    r = run_cli(capsys, "evaluate", str(run_dir))
    assert r.code == 0, r.err
    assert "test: 30 samples" in r.out and "accuracy" in r.out and "confusion matrix" in r.out
    assert (run_dir / "plots" / "confusion_test.png").is_file()
    r = run_cli(capsys, "evaluate", str(run_dir), "--split", "val", "--json")
    data = json.loads(r.out)
    assert data["split"] == "val" and len(data["confusion"]) == 3 and set(data["metrics"]) == {"loss", "accuracy", "f1"}


def test_predict_writes_csv_and_prints_a_table(run_dir, tmp_path, capsys):
    csv_in = tmp_path / "flowers.csv"
    csv_in.write_text("sepal_length_cm,sepal_width_cm,petal_length_cm,petal_width_cm\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")
    out = tmp_path / "pred.csv"
    r = run_cli(capsys, "predict", str(run_dir), "--input", str(csv_in), "--output", str(out), "--probabilities")
    assert r.code == 0, r.err
    assert "predictions (2 rows" in r.out and f"wrote {out}" in r.out
    rows = out.read_text().splitlines()
    assert rows[0] == "row,predicted,predicted_name,p_setosa,p_versicolor,p_virginica" and len(rows) == 3
    r = run_cli(capsys, "predict", str(run_dir), "--input", str(csv_in), "--json")
    assert len(json.loads(r.out)["predictions"]) == 2


def test_predict_on_labelled_rows_shows_predicted_and_true_and_the_accuracy(run_dir, tmp_path, capsys):
    csv_in = tmp_path / "labelled.csv"
    csv_in.write_text("sepal_length_cm,sepal_width_cm,petal_length_cm,petal_width_cm,species\n"
                      "5.1,3.5,1.4,0.2,setosa\n6.7,3.0,5.2,2.3,virginica\n")
    r = run_cli(capsys, "predict", str(run_dir), "--input", str(csv_in))
    assert r.code == 0, r.err
    header = next(l for l in r.out.splitlines() if "predicted" in l)
    assert "true" in header and "label" not in header
    assert "setosa" in r.out and "virginica" in r.out
    assert re.search(r"accuracy \d\.\d{4}: \d of 2 predictions match the input's labels", r.out), r.out


def test_hints_for_a_missing_input_and_an_unlabelled_file_say_what_is_true(run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run_cli(capsys, "predict", str(run_dir), "--input", "nope.csv")
    assert r.code == 2 and "input file not found" in r.err, r.err
    assert "relative path starts from the current directory" in r.err and "spec file" not in r.err
    (tmp_path / "unlabelled.csv").write_text("sepal_length_cm,sepal_width_cm,petal_length_cm,petal_width_cm\n5.1,3.5,1.4,0.2\n")
    r = run_cli(capsys, "evaluate", str(run_dir), "--data", "unlabelled.csv")
    assert r.code == 2 and "has no target column 'species'" in r.err and "no the" not in r.err, r.err


def test_runs_lists_runs_side_by_side(run_dir, capsys):
    run_cli(capsys, "evaluate", str(run_dir), "--json")
    r = run_cli(capsys, "runs", str(run_dir.parent))
    assert r.code == 0, r.err
    assert "1 run under" in r.out and "one" in r.out and "done" in r.out
    data = json.loads(run_cli(capsys, "runs", str(run_dir.parent), "--json").out)
    assert data[0]["status"] == "completed" and data[0]["best_epoch"] and "test" in data[0]["evaluations"]


@pytest.mark.parametrize("argv,expect", [
    (["train"], "give a CONFIG"),
    (["evaluate", "nowhere"], "no run directory at nowhere"),
    (["runs", "nowhere"], "no such folder"),
])
def test_mistakes_exit_2_with_a_message(argv, expect, capsys):
    r = run_cli(capsys, *argv)
    assert r.code == 2 and expect in r.err


def test_spec_without_data_section_is_a_located_error(tmp_path, capsys):
    p = write_spec(tmp_path, "model:\n  input_shape: [4]\n  layers: [{type: dense, units: 2}]\n")
    r = run_cli(capsys, "train", str(p))
    assert r.code == 2 and "no data: section" in r.err


def test_nan_loss_exits_2_naming_epoch_and_step(spec, tmp_path, capsys):
    r = run_cli(capsys, "train", str(spec), "--out", str(tmp_path / "run"), "--set", "train.optimizer.name=sgd",
                "--set", "train.schedule.name=step", "--set", "train.schedule.step_size=1",
                "--set", "train.schedule.gamma=1e30", "--set", "train.optimizer.lr=0.1")
    assert r.code == 2
    assert re.search(r"the loss became (nan|inf|-inf) at epoch 2, step \d+ of 6", r.err), r.err


def test_rich_progress_on_a_terminal(spec, tmp_path, capsys, monkeypatch):
    """On a TTY: a header, an epoch table (header row + a row per epoch) and a summary."""
    from rich.console import Console

    from layerforge.cli import render, train_cmd

    console = Console(record=True, force_terminal=True, width=140)
    monkeypatch.setattr(render, "console", console)
    view = train_cmd.make_view(quiet=False, json_mode=False, tty=True)
    import layerforge as lf

    lf.train(spec, out=tmp_path / "run", callbacks=[view])
    text = console.export_text()
    assert "Training iris_cli" in text and "val_accuracy" in text
    assert re.search(r"3/3 +[\d.]+", text) and "finished after 3 epochs" in text


def test_ctrl_c_saves_a_checkpoint_and_exits_130(spec, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "layerforge", "train", str(spec), "--out", str(out),
                             "--set", "train.epochs=100000", "--set", "train.checkpoint_every=0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("epoch 2/"):
            proc.send_signal(signal.SIGINT)
            break
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in rest and f"continue with: layerforge train --resume {out}" in rest
    manifest = json.loads((out / "checkpoints" / "last" / "manifest.json").read_text())
    assert manifest["epoch"] >= 2
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"


def test_repeated_ctrl_c_during_shutdown_exits_130_without_a_traceback(spec, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "layerforge", "train", str(spec), "--out", str(out),
                             "--set", "train.epochs=100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("epoch 2/"):
            for _ in range(3):  # stop, stop at once, and one more while it leaves
                proc.send_signal(signal.SIGINT)
                time.sleep(0.05)
            break
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err + rest and "KeyboardInterrupt" not in err


def test_bad_data_leaves_no_run_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = write_spec(tmp_path, SPEC.replace("input_shape: [4]", "input_shape: [5]"))
    r = run_cli(capsys, "train", str(p))
    assert r.code == 2 and "data error" in r.err
    assert not (tmp_path / "runs").exists()


def test_out_folder_holding_a_run_is_refused(run_dir, spec, capsys):
    r = run_cli(capsys, "train", str(spec), "--out", str(run_dir))
    assert r.code == 2 and "already holds a run" in r.err and "--resume" in r.err


def test_the_train_view_leaves_out_exactly_the_engines_non_metric_keys():
    from layerforge.cli.train_cmd import TIMES
    from layerforge.engine.rundir import NOT_METRICS

    assert TIMES == NOT_METRICS
