"""`layerforge search` as a user runs it: killed with SIGKILL and resumed, two worker processes on one
journal, JSON and plain output, a missing Optuna."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import run_cli
from tests.search.conftest import iris_search

STUDY = Path("runs/iris_search/search-default")
FOUR = """
search:
  objective: val_accuracy
  trials: 4
  pruner: none
  space:
    model.layers.h1.units: {space: int, lower: 4, upper: 16}
    train.optimizer.lr: {space: loguniform, lower: 3e-3, upper: 3e-2}
"""


def _cli(*args: str, cwd: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "layerforge", "search", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _trials(cwd: Path) -> list:
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(cwd / STUDY / "journal.log")))
    return optuna.load_study(study_name="default", storage=storage).get_trials()


def _finals(run: Path) -> int:
    """How many times a run directory's training finished (final lines in metrics.jsonl)."""
    return sum(json.loads(line).get("final", False) for line in (run / "metrics.jsonl").read_text().splitlines())


@pytest.mark.slow
def test_a_study_killed_with_sigkill_resumes_without_losing_or_repeating_a_finished_trial(tmp_path):
    pytest.importorskip("optuna")
    spec = iris_search(tmp_path, FOUR, epochs=6)
    proc = _cli(str(spec), cwd=tmp_path)
    third = tmp_path / STUDY / "trial-2" / "run.json"  # written just before its training starts
    deadline = time.time() + 120
    while not third.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    before = {t.number: t for t in _trials(tmp_path)}
    assert [before[n].state.name for n in (0, 1, 2)] == ["COMPLETE", "COMPLETE", "RUNNING"]
    kept = {n: (tmp_path / STUDY / f"trial-{n}" / "metrics.jsonl").read_text() for n in (0, 1)}

    done = _cli(str(spec), "--resume", cwd=tmp_path)
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    assert "Resuming iris_search (study 'default'): 4 trials, 2 finished before" in out
    after = {t.number: t for t in _trials(tmp_path)}
    states = {n: t.state.name for n, t in after.items()}
    assert states == {0: "COMPLETE", 1: "COMPLETE", 2: "FAIL", 3: "COMPLETE", 4: "COMPLETE"}, states
    assert after[3].params == before[2].params and after[3].user_attrs["retry_of"] == 2  # the killed one, again
    for n in (0, 1):  # finished trials: untouched, not run again
        assert after[n].values == before[n].values
        assert (tmp_path / STUDY / f"trial-{n}" / "metrics.jsonl").read_text() == kept[n]
    for n in (0, 1, 3, 4):
        assert _finals(tmp_path / STUDY / f"trial-{n}") == 1
    run2 = json.loads((tmp_path / STUDY / "trial-2" / "run.json").read_text())
    assert run2["status"] == "failed" and "worker stopped" in run2["message"]
    assert "trial 3   complete" in out and "(re-run of trial 2)" in out  # plain lines when not a terminal


@pytest.mark.slow
def test_two_worker_processes_share_one_journal_and_run_each_trial_once(tmp_path):
    pytest.importorskip("optuna")
    spec = iris_search(tmp_path, FOUR, epochs=1)
    done = _cli(str(spec), "--workers", "2", "--json", cwd=tmp_path)
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    result = json.loads(out)
    assert result["counts"]["complete"] == 4 and len(result["trials"]) == 4
    trials = _trials(tmp_path)
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers ran trials
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4  # differently seeded samplers
    for t in trials:
        assert _finals(tmp_path / STUDY / f"trial-{t.number}") == 1
    logs = sorted((tmp_path / STUDY / "workers").glob("worker-*.log"))
    assert [p.read_text().strip().splitlines()[-1] for p in logs] == ["worker finished: completed"] * 2


def test_an_existing_study_needs_resume_and_a_missing_one_cannot_be_resumed(tmp_path, capsys, monkeypatch):
    pytest.importorskip("optuna")
    monkeypatch.chdir(tmp_path)
    spec = iris_search(tmp_path, FOUR)
    r = run_cli(capsys, "search", str(spec), "--resume", "--study", "nope")
    assert r.code == 2 and "there is no study 'nope' to resume" in r.err and "without --resume" in r.err
    (tmp_path / STUDY).mkdir(parents=True)
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    optuna.create_study(study_name="default", storage=JournalStorage(JournalFileBackend(str(STUDY / "journal.log"))))
    r = run_cli(capsys, "search", str(spec))
    assert r.code == 2 and "study 'default' already exists" in r.err and "--resume" in r.err


def test_without_optuna_the_message_names_the_extra_and_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna → ImportError
    r = run_cli(capsys, "search", str(iris_search(tmp_path, FOUR)))
    assert r.code == 2
    assert "needs Optuna" in r.err and 'pip install -e ".[search]"' in r.err
    assert not (tmp_path / "runs").exists()


def test_search_help_imports_neither_torch_nor_optuna():
    probe = ("import sys\nfrom layerforge.cli.app import main\ntry:\n    main(['search', '--help'])\n"
             "except SystemExit:\n    pass\nprint('HEAVY=' + ','.join(m for m in ('torch', 'optuna', 'matplotlib') "
             "if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert "HEAVY=\n" in r.stdout and "--workers" in r.stdout, r.stdout[-800:] + r.stderr
