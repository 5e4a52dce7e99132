"""A run trained with `--plugins` reopens alone: spec.yaml pins each plugin file by path and sha256, so
evaluate, predict, profile and --resume work without `--plugins`, and a changed plugin file is refused
unless trusted."""
from __future__ import annotations

import json
import shutil

import yaml

from layerforge.plugins import sha256_of
from tests.helpers import run_cli, write_spec

SPEC = """
name: iris_glu
model:
  input_shape: [4]
  layers:
    - {type: gated_linear, units: 8}
    - {type: dense, units: 3}
data: {dataset: iris, val: 0.2, test: 0.2}
train: {epochs: 2, batch_size: 32, device: cpu, plots: false}
"""


def test_a_run_trained_with_plugins_is_evaluated_predicted_profiled_and_resumed(root, tmp_path, capsys):
    plugin = tmp_path / "glu.py"
    shutil.copy(root / "docs/examples/gated_linear.py", plugin)
    spec = write_spec(tmp_path, SPEC)
    run = tmp_path / "run"
    r = run_cli(capsys, "train", str(spec), "--plugins", str(plugin), "--out", str(run), "--quiet")
    assert r.code == 0, r.err

    saved = yaml.safe_load((run / "spec.yaml").read_text())
    assert saved["plugins"] == [{"path": str(plugin.resolve()), "sha256": sha256_of(plugin)}]

    r = run_cli(capsys, "evaluate", str(run), "--json")
    assert r.code == 0 and "warning" not in r.err, r.err
    rows = tmp_path / "x.csv"
    rows.write_text("sepal_length_cm,sepal_width_cm,petal_length_cm,petal_width_cm\n5.1,3.5,1.4,0.2\n")
    r = run_cli(capsys, "predict", str(run), "--input", str(rows), "--json")
    assert r.code == 0, r.err
    r = run_cli(capsys, "profile", str(run / "spec.yaml"), "--quick", "--device", "cpu", "--threads", "1",
                "--batch-sizes", "2", "--mode", "inference", "--no-per-layer")
    assert r.code == 0 and "iris_glu" in r.out, r.err
    r = run_cli(capsys, "train", "--resume", str(run), "--set", "train.epochs=3", "--quiet")
    assert r.code == 0, r.err
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["epochs_run"] == 3 and len(info["resumed"]) == 1

    # The plugin file changes after training: it is not imported (exit 2, located at the plugins entry of the
    # run's spec) unless the user trusts it, and then a warning says it changed.
    plugin.write_text(plugin.read_text() + "\n# edited after training\n")
    from layerforge import plugins

    plugins._LOADED.clear()
    r = run_cli(capsys, "evaluate", str(run))
    assert r.code == 2 and "has changed since it was recorded" in r.err and "glu.py" in r.err and "--trust-plugins" in r.err
    assert "spec.yaml:" in r.err and "Traceback" not in r.err
    r = run_cli(capsys, "evaluate", str(run), "--trust-plugins")
    assert r.code == 0, r.err
    assert "warning" in r.err and "has changed since it was recorded" in r.err


def test_evaluate_and_predict_accept_plugins_for_a_run_that_did_not_record_them(root, tmp_path, capsys):
    plugin = tmp_path / "glu.py"
    shutil.copy(root / "docs/examples/gated_linear.py", plugin)
    spec = write_spec(tmp_path, SPEC.replace("epochs: 2", "epochs: 1"))
    run = tmp_path / "run"
    assert run_cli(capsys, "train", str(spec), "--plugins", str(plugin), "--out", str(run), "--quiet").code == 0
    # An older run: its spec.yaml does not name the plugin (rewritten the way the run writes it, checksummed).
    from layerforge.engine.rundir import RunDir

    saved = yaml.safe_load((run / "spec.yaml").read_text())
    del saved["plugins"]
    RunDir(run)._write_covered("spec.yaml", yaml.safe_dump(saved, sort_keys=False).encode())
    from layerforge import plugins

    plugins._LOADED.clear()
    import importlib

    registry = importlib.import_module("layerforge.layers.registry")
    registry._REGISTRY.pop("gated_linear")
    r = run_cli(capsys, "evaluate", str(run))
    assert r.code == 2 and "unknown layer type 'gated_linear'" in r.err
    r = run_cli(capsys, "evaluate", str(run), "--plugins", str(plugin), "--json")
    assert r.code == 0, r.err
    rows = tmp_path / "x.csv"
    rows.write_text("sepal_length_cm,sepal_width_cm,petal_length_cm,petal_width_cm\n5.1,3.5,1.4,0.2\n")
    r = run_cli(capsys, "predict", str(run), "--input", str(rows), "--plugins", str(plugin))
    assert r.code == 0, r.err
