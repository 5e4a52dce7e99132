"""Kill-anywhere: SIGKILL at a checkpoint-writing step (write, fsync, rename, remove), once or twice in a row,
then ``--resume`` ends bit-identical to a run never interrupted.

The trainings run in ``kill_anywhere_server.py`` (one torch import, a forked child per training); this file
judges each scenario it reports. A kill before the first checkpoint is complete leaves nothing to resume, and
resuming says so clearly; a kill after the last epoch's checkpoint leaves a finished run, and resuming says so.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SERVER = Path(__file__).with_name("kill_anywhere_server.py")
NOTHING_TO_RESUME = ("no checkpoint at", "is not a run directory", "has no manifest.json", "does not list")


def _scenarios(tmp_path: Path, full: bool) -> tuple[dict, list[dict]]:
    args = [sys.executable, str(SERVER), str(tmp_path), *(["full"] if full else [])]
    done = subprocess.run(args, capture_output=True, text=True, timeout=1800, cwd=SERVER.parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    reference, *runs = [json.loads(line) for line in done.stdout.splitlines()]
    assert reference["reference"] == {"ended": "completed"}
    return reference, runs


def _first_checkpoint_step(steps: list[str]) -> int:
    """The 1-based step after which ``checkpoints/last`` first exists: the rename following its first write."""
    writes = [i for i, s in enumerate(steps) if s == "_write_weights"]
    return next(i + 1 for i in range(writes[1], len(steps)) if steps[i] == "_rename")


def _judge(reference: dict, runs: list[dict]) -> list[str]:
    """One line per scenario that lost a checkpoint, diverged, or ended other than as promised."""
    first_ck = _first_checkpoint_step(reference["steps"])
    wrong = []
    for run in runs:
        kill, final = run["kills"][0], run["final"]
        message = final.get("message", "")
        if kill >= first_ck and not (run["resumable"] and run["resumable_after_second"] is not False):
            wrong.append(f"{run['kills']}: no checkpoint left to resume from")
        if final["ended"] == "completed" or "already finished" in message:
            same = {k: run[k] == reference[k] for k in ("last", "best", "records")}
            if not all(same.values()):
                wrong.append(f"{run['kills']}: differs from the uninterrupted run in {same}")
            if final["ended"] == "completed" and run["dirs"] != reference["dirs"]:
                wrong.append(f"{run['kills']}: leftovers in checkpoints/: {run['dirs']}")
        elif not (kill < first_ck and final["ended"] == "error" and any(m in message for m in NOTHING_TO_RESUME)):
            wrong.append(f"{run['kills']} ({run['step']}): resuming ended {final}")
    return wrong


def _check(tmp_path: Path, full: bool) -> None:
    reference, runs = _scenarios(tmp_path, full)
    assert len(runs) >= 10
    assert {"_rename", "_fsync_file", "_write_weights", "_write_bytes"} <= {r["step"] for r in runs}
    assert any(len(r["kills"]) == 2 for r in runs)
    assert _judge(reference, runs) == []


def test_kill_at_each_step_of_a_checkpoint_swap_and_twice_in_a_row_resumes_bit_identically(tmp_path):
    _check(tmp_path, full=False)


@pytest.mark.slow
def test_kill_at_every_step_of_a_whole_training_resumes_bit_identically(tmp_path):
    _check(tmp_path, full=True)
