"""The worker of tests/engine/test_kill_anywhere.py: trains a tiny run many times, each time SIGKILLing
itself at one step of writing it, then resumes, and reports how each run ended as JSON lines.

One process imports torch once and never computes; every training runs in a forked child (fork after
computing would inherit a thread pool in an unknown state), so a scenario costs a fraction of a second
instead of a torch import. A step is one call of the checkpoint module's step functions (writes, fsyncs,
renames, removals), which the run directory's own small files go through as well.

Usage: python -m tests.engine.kill_anywhere_server OUT_DIR [full]  (prints one JSON object per line)
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path

import torch._dynamo  # noqa: F401  (imported here, once: the optimizers import it on first use)

import layerforge as lf
import layerforge.engine.api  # noqa: F401
import layerforge.engine.trainer  # noqa: F401
from layerforge.engine import checkpoint
from layerforge.engine.rundir import TIMINGS

STEPS = ("_write_weights", "_write_state", "_write_bytes", "_fsync_file", "_fsync_dir", "_rename", "_remove")
SPEC = {
    "name": "killme", "seed": 3,
    "model": {"input_shape": [4], "layers": [{"type": "dense", "units": 8, "activation": "relu"},
                                             {"type": "dropout", "rate": 0.2}, {"type": "dense", "units": 3}]},
    "train": {"epochs": 3, "batch_size": 32, "device": "cpu", "plots": False, "threads": 1,
              "optimizer": {"name": "adam", "lr": 0.01}},
}


def _bundle():
    import torch

    from layerforge.data.bundle import DataBundle, Split

    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 4, generator=g)
    y = (x @ torch.randn(4, 3, generator=g)).argmax(1)
    return DataBundle(task="classification", train=Split(x[:90], y[:90]), val=Split(x[90:], y[90:]), num_classes=3,
                      input_shapes={"input": (4,)})


def _run_child(out: Path, resume: bool, kill_at: int | None, log: Path | None) -> dict:
    """Train (or resume) ``out`` in a forked child, killed at step ``kill_at``; the child's outcome."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(r)
        names: list[str] = []
        count = [0]
        for name in STEPS:
            real = getattr(checkpoint, name)

            def step(*a, _real=real, _name=name, **k):
                count[0] += 1
                names.append(_name)
                if count[0] == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                return _real(*a, **k)

            setattr(checkpoint, name, step)
        try:
            if resume:
                lf.train(resume=out, data=_bundle())
            else:
                lf.train(SPEC, out=out, data=_bundle())
            outcome = {"ended": "completed"}
        except lf.LayerforgeError as e:
            outcome = {"ended": "error", "message": e.message}
        except BaseException as e:  # noqa: BLE001 - report anything else as a failure of the protocol
            outcome = {"ended": "crash", "message": f"{type(e).__name__}: {e}"}
        if log is not None:
            log.write_text(json.dumps(names))
        os.write(w, json.dumps(outcome).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return {"ended": "killed", "signal": os.WTERMSIG(status)}
    return json.loads(data)


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _fingerprint(run: Path) -> dict:
    """What must equal the uninterrupted run's: the final weights of last and best, the epoch records less their
    wall-clock fields (``rundir.TIMINGS``)."""
    records = []
    metrics = run / "metrics.jsonl"
    for line in (metrics.read_text().splitlines() if metrics.is_file() else []):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if not rec.get("final"):
            records.append({k: v for k, v in rec.items() if k not in TIMINGS})  # wall clock: never equal
    ck = run / "checkpoints"
    found = {name: checkpoint._candidates(ck / name) for name in ("last", "best")}
    newest = {name: max(c, key=lambda x: (x[0], x[1]))[2] / checkpoint.WEIGHTS if c else Path("/nonexistent")
              for name, c in found.items()}
    return {"last": _digest(newest["last"]), "best": _digest(newest["best"]),
            "records": records, "dirs": sorted(p.name for p in ck.iterdir()) if ck.is_dir() else []}


def _resumable(run: Path) -> bool:
    return bool(checkpoint._candidates(run / "checkpoints" / "last"))


def _plan(steps: list[str], full: bool) -> list[tuple[int, ...]]:
    """Kill points (1-based step numbers; a pair kills the resumed run again at its own step ``j``).

    The quick plan kills before the run directory exists, at every third step of one checkpoint save (epoch
    2's ``checkpoints/last``, the swap that replaces a complete checkpoint) and at the very last step; then
    twice in a row: inside that swap (before and after the old checkpoint is moved aside), the resumed run
    killed again at a few of its first twelve steps (its leftover cleanup and its first save). The full plan
    kills at every step, and at each of the twelve second steps.
    """
    writes = [i for i, s in enumerate(steps) if s == "_write_weights"]  # best 1, last 1, best 2, last 2, ...
    epoch2_last = list(range(writes[3] + 1, writes[4] + 1))
    firsts = [i + 1 for i in range(writes[3], len(steps)) if steps[i] == "_rename"][:2]
    if full:
        return [(k,) for k in range(1, len(steps) + 1)] + [(k, j) for k in firsts for j in range(1, 13)]
    singles = [1, *epoch2_last[::3], len(steps)]
    doubles = [(firsts[0], 3), (firsts[0], 9), (firsts[1], 6), (firsts[1], 12)]
    return [(k,) for k in singles] + doubles


def main(out: Path, full: bool) -> None:
    ref = out / "reference"
    log = out / "steps.json"
    outcome = _run_child(ref, resume=False, kill_at=None, log=log)
    steps = json.loads(log.read_text())
    print(json.dumps({"reference": outcome, "steps": steps, **_fingerprint(ref)}), flush=True)
    for kills in _plan(steps, full):
        run = out / ("k" + "-".join(map(str, kills)))
        first = _run_child(run, resume=False, kill_at=kills[0], log=None)
        had = _resumable(run)
        second = _run_child(run, resume=True, kill_at=kills[1], log=None) if len(kills) > 1 else None
        had_after = _resumable(run)
        final = _run_child(run, resume=True, kill_at=None, log=None)
        print(json.dumps({"kills": list(kills), "step": steps[kills[0] - 1], "first": first, "second": second,
                          "resumable": had, "resumable_after_second": had_after, "final": final,
                          **_fingerprint(run)}), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), full=sys.argv[2:] == ["full"])
