"""A run directory is input too: what a prediction depends on is checksummed, a run never imports code it
was not trained with, a read-only run evaluates and predicts, a full disk or a second training of the same
run is a clear error, and nothing already written is lost (issue 12)."""
from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import yaml

import layerforge as lf
from layerforge.engine.rundir import RunDir
from layerforge.errors import CheckpointError, LayerforgeError
from tests.helpers import run_cli

SPEC = """\
name: integrity
model: {input_shape: [4], layers: [{type: dense, units: 8, activation: relu}, {type: dense, units: 3}]}
data: {dataset: iris, val: 0.2, test: 0.2}
train: {epochs: 2, batch_size: 32, device: cpu, plots: false}
"""
ROWS = "sepal_length_cm,sepal_width_cm,petal_length_cm,petal_width_cm\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("integrity")
    (tmp / "spec.yaml").write_text(SPEC)
    lf.train(tmp / "spec.yaml", out=tmp / "run")
    return tmp / "run"


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A fresh copy of the trained run for a test to damage."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


@pytest.fixture
def rows(tmp_path) -> Path:
    (tmp_path / "rows.csv").write_text(ROWS)
    return tmp_path / "rows.csv"


def evil_plugin(folder: Path) -> tuple[Path, Path]:
    """A plugin file that leaves a marker when imported (so a test sees whether any code ran)."""
    marker = folder / "IMPORTED"
    plugin = folder / "evil.py"
    plugin.write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    return plugin, marker


def test_a_plugins_entry_added_to_spec_yaml_is_refused_and_runs_nothing(run, rows, tmp_path, capsys):
    plugin, marker = evil_plugin(tmp_path)
    text = (run / "spec.yaml").read_text()
    (run / "spec.yaml").write_text(f"plugins: [{plugin}]\n" + text)
    r = run_cli(capsys, "predict", str(run), "--input", str(rows))
    assert r.code == 2 and "spec.yaml was changed after the run wrote it" in r.err and "Traceback" not in r.err
    assert not marker.exists()


def test_an_unpinned_plugin_is_not_imported_even_with_a_matching_manifest(run, rows, tmp_path, capsys):
    """Someone rewrote spec.yaml *and* its checksum: the entry has no sha256, so the run was not trained with
    it; only --trust-plugins imports it."""
    plugin, marker = evil_plugin(tmp_path)
    saved = yaml.safe_load((run / "spec.yaml").read_text())
    RunDir(run)._write_covered("spec.yaml", yaml.safe_dump({"plugins": [str(plugin)], **saved}).encode())
    r = run_cli(capsys, "predict", str(run), "--input", str(rows))
    assert r.code == 2 and "is not pinned by a sha256" in r.err and "--trust-plugins" in r.err
    assert "spec.yaml:" in r.err and not marker.exists()
    r = run_cli(capsys, "predict", str(run), "--input", str(rows), "--trust-plugins")
    assert r.code == 0 and "warning" in r.err and marker.exists()


def test_a_run_manifest_with_no_entries_is_an_error(run):
    (run / "manifest.json").write_text('{"format": 1, "files": {}}')
    with pytest.raises(CheckpointError, match="does not list spec.yaml, data.json, transform.json"):
        lf.predict(run, [[5.1, 3.5, 1.4, 0.2]])


def test_a_missing_run_manifest_is_an_error(run):
    (run / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="has no manifest.json"):
        lf.evaluate(run)


def test_a_checkpoint_manifest_with_no_entries_is_an_error_not_a_silent_load(run):
    for which in ("best", "last"):
        m = run / "checkpoints" / which / "manifest.json"
        m.write_text(json.dumps({**json.loads(m.read_text()), "files": {}}))
    (run / "checkpoints" / "best" / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(CheckpointError) as e:
        lf.predict(run, [[5.1, 3.5, 1.4, 0.2]])
    assert "checkpoints/best" in e.value.message


@pytest.mark.parametrize("name,edit", [
    ("transform.json", lambda d: {**d, "mean": [0.0] * 4} if "mean" in d else {**d, "edited": True}),
    ("data.json", lambda d: {**d, "class_names": ["a", "b", "c"]}),
])
def test_editing_what_a_prediction_depends_on_is_detected(run, name, edit, capsys, rows):
    p = run / name
    p.write_text(json.dumps(edit(json.loads(p.read_text()))))
    r = run_cli(capsys, "predict", str(run), "--input", str(rows))
    assert r.code == 2 and f"{name} was changed after the run wrote it" in r.err and "Traceback" not in r.err


def test_a_second_training_of_a_run_is_refused_naming_the_holder(run, capsys):
    with RunDir(run).locked():
        with pytest.raises(CheckpointError, match=f"in use by another layerforge process \\(PID {os.getpid()}\\)"):
            lf.train(resume=run, overrides=["train.epochs=3"])
        r = run_cli(capsys, "train", "--resume", str(run), "--set", "train.epochs=3")
        assert r.code == 2 and f"PID {os.getpid()}" in r.err and "Traceback" not in r.err
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x).get("epoch") for x in lines] == [1, 2, None]  # nothing appended by the refused runs
    assert lf.train(resume=run, overrides=["train.epochs=3"]).epochs_run == 3


def test_a_full_disk_during_a_checkpoint_is_a_clear_error_and_keeps_the_previous_one(tmp_path, monkeypatch, capsys):
    from layerforge.engine import checkpoint

    (tmp_path / "spec.yaml").write_text(SPEC.replace("epochs: 2", "epochs: 3"))
    real, calls = checkpoint._write_state, []

    def fill_disk_on_the_third(state, dest):
        calls.append(dest)
        if len(calls) == 3:  # epoch 1: best, last; epoch 2: best → full
            raise OSError(errno.ENOSPC, "No space left on device")
        real(state, dest)

    monkeypatch.setattr(checkpoint, "_write_state", fill_disk_on_the_third)
    r = run_cli(capsys, "train", str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "run"))
    assert r.code == 2 and "No space left on device" in r.err and "previous checkpoint is intact" in r.err
    assert "Traceback" not in r.err
    ck = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in ck.iterdir()) == ["best", "last"]  # no half-written leftovers
    assert checkpoint.verify(ck / "last")["epoch"] == 1 and checkpoint.verify(ck / "best")["epoch"] == 1
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "failed"
    monkeypatch.setattr(checkpoint, "_write_state", real)
    assert lf.train(resume=tmp_path / "run").epochs_run == 3


# --- a read-only run directory --------------------------------------------------------------------------
def _use_read_only(run: Path) -> tuple:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ev = lf.evaluate(run)
    pr = lf.predict(run, [[5.1, 3.5, 1.4, 0.2]])
    with pytest.raises(CheckpointError) as e:
        lf.train(resume=run, overrides=["train.epochs=3"])
    return ev.samples, [str(w.message) for w in caught], pr.predictions.tolist(), e.value.message


def _check_read_only_results(run: Path, results: tuple) -> None:
    samples, warned, predictions, resumed = results
    assert samples == 30 and len(predictions) == 1
    assert any("not saved" in w and "not writable" in w for w in warned), warned
    assert "need write access" in resumed
    assert not (run / "eval_test.json").exists()


@pytest.fixture
def read_only_filesystem(monkeypatch):
    """Make every write under a folder fail as on a read-only mount (EROFS): ``open`` for writing, ``os.open``
    with a write flag, renames, mkdir and unlink. (Root ignores file permissions, so chmod cannot do this
    in a test run as root; the chmod test below covers the real thing for other users.)"""
    import builtins
    import io

    roots: list[Path] = []

    def inside(path) -> bool:
        try:
            p = Path(os.fsdecode(path)).resolve()
        except (TypeError, ValueError):
            return False
        return any(p == r or r in p.parents for r in roots)

    def refuse(path):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    real_open, real_os_open = builtins.open, os.open

    def fake_open(file, mode="r", *a, **k):
        if any(c in mode for c in "wax+") and inside(file):
            refuse(file)
        return real_open(file, mode, *a, **k)

    def fake_os_open(path, flags, *a, **k):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND) and inside(path):
            refuse(path)
        return real_os_open(path, flags, *a, **k)

    def guard(real):
        def wrapped(*paths, **k):
            if any(inside(p) for p in paths[:2] if isinstance(p, (str, bytes, os.PathLike))):
                refuse(paths[0])
            return real(*paths, **k)
        return wrapped

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    for name in ("replace", "rename", "mkdir", "unlink", "rmdir"):
        monkeypatch.setattr(os, name, guard(getattr(os, name)))
    return roots.append


def test_a_read_only_run_evaluates_and_predicts_and_resume_says_it_needs_write_access(run, read_only_filesystem):
    read_only_filesystem(run.resolve())
    _check_read_only_results(run, _use_read_only(run))


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions (the EROFS test above covers it)")
def test_a_run_made_read_only_with_chmod_is_used_read_only(run):  # pragma: no cover - not run as root
    for p in [run, *run.rglob("*")]:
        os.chmod(p, stat.S_IMODE(p.stat().st_mode) & ~0o222)
    try:
        _check_read_only_results(run, _use_read_only(run))
    finally:
        for p in [run, *run.rglob("*")]:
            os.chmod(p, stat.S_IMODE(p.stat().st_mode) | 0o200)


@pytest.mark.parametrize("inputs,words", [
    ([[1.0, 2.0, 3.0]], "each sample has shape [3] but model.input_shape is [4]"),
    ([["a", "b", "c", "d"]], "must be numbers"),
    ([[float("nan"), 1.0, 2.0, 3.0]], "NaN"),
    (7.0, "a single number"),
])
def test_arrays_given_to_predict_are_checked_like_files(trained, inputs, words):
    from layerforge.errors import DataError

    with pytest.raises(DataError, match=words.replace("[", r"\[").replace("]", r"\]")):
        lf.predict(trained, inputs)


def test_one_sample_without_its_batch_axis_is_predicted(trained):
    assert lf.predict(trained, [5.1, 3.5, 1.4, 0.2]).predictions.shape == (1,)
