"""``search``: from a spec with a ``search:`` section to a finished (or resumable) study.

::

    spec ── build.load (+ a look at the data) ── Space.parse, resolve_goals ──▶ located errors, or
    the study (journal in the study directory, or --storage) ── work() in this process, or N worker
    processes sharing it (torch threads split between them) ──▶ report.finish: best.yaml, plots, report.json

Each worker process re-enters through the same door: ``python -m layerforge.search.worker JOB`` loads the
study's spec.yaml (the spec as this call ran it) and runs the same loop.
"""
from __future__ import annotations

import copy
import datetime as _dt
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import yaml

from ..errors import LayerforgeWarning, UsageError
from .events import SearchCallback, SearchResult, StudyInfo
from .objective import TrialRunner, portable, resolve_goals
from .report import Watcher, finish
from .space import Space
from .study import Limits, SearchError, make_pruner, make_sampler, open_storage, pruner_name, require_optuna, \
    sampler_name, study_exists, work
from .studydir import INFO, SPEC, StudyDir

if TYPE_CHECKING:
    import optuna

    from ..spec.schema import Spec

EXIT = {"completed": 0, "timeout": 124, "interrupted": 130, "orphaned": 130}


@dataclass
class Job:
    """What a worker needs (JSON-safe: it is a worker process's only argument)."""

    config: str  # the study's spec.yaml
    base_dir: str  # where the spec's relative data paths start
    plugins: list[str]
    study: str
    storage: str | None
    trials: int
    deadline: float | None
    seed: int
    threads: int | None = None
    parent: int | None = None


def prepare(source: Any, overrides: Sequence[str] | None, plugins: Sequence[str] | None, study: str, *,
            check_data: bool = False, base_dir: str | None = None) -> tuple["Spec", TrialRunner, StudyDir]:
    """The spec through the front door, its space and objectives checked; the trial runner and study directory."""
    from .. import build

    base, graph = build.load(source, overrides, plugins, check_data=check_data, base_dir=base_dir)
    space = Space.parse(base)
    goals = resolve_goals(base, graph)
    assert base.search is not None
    study_dir = StudyDir.of(base.train.out, base.name, study)
    prune = len(goals) == 1 and goals[0].per_epoch and pruner_name(base.search, goals) != "none"
    runner = TrialRunner(space, goals, base.search.budget, study_dir.path, base, [str(p) for p in plugins or []], prune)
    return base, runner, study_dir


def search(spec: Any, *, overrides: Sequence[str] | None = None, plugins: Sequence[str] | None = None,
           trials: int | None = None, timeout: float | None = None, workers: int = 1, storage: str | None = None,
           study: str = "default", resume: bool = False, callbacks: Iterable[SearchCallback] = ()) -> SearchResult:
    """Run (or continue) a search; see :func:`layerforge.search` for the arguments."""
    require_optuna()
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if trials is not None and trials < 1:
        raise UsageError(f"--trials must be at least 1, got {trials}")
    if not study or any(c in study for c in "/\\") or study.startswith("."):
        raise UsageError(f"study name '{study}' cannot be a folder name", hint="use letters, digits, '-' and '_'")
    base, runner, study_dir = prepare(spec, overrides, plugins, study, check_data=True)
    assert base.search is not None
    target = trials or base.search.trials
    store, shown = open_storage(study_dir, storage)
    existing = study_exists(store, study)
    st = _open(store, shown, study, study_dir, base, runner, existing, resume)
    before = st.get_trials(deepcopy=False)
    finished_before = sum(t.state.name in ("COMPLETE", "PRUNED") for t in before)
    # a resumed study's sampler must not replay the random draws of the first session
    seed = (base.search.seed if base.search.seed is not None else base.seed) + len(before)
    st.sampler = make_sampler(base.search, len(runner.goals), seed, target)
    threads = max(1, _cpus() // workers) if workers > 1 else None
    _record(study_dir, base, study, shown, runner, target, workers, existing)

    goals = [(g.name, g.direction) for g in runner.goals]
    info = StudyInfo(name=base.name, study=study, study_dir=study_dir.path, storage=shown, objectives=goals,
                     trials=target, finished_before=finished_before, sampler=sampler_name(base.search, len(goals)),
                     pruner=pruner_name(base.search, runner.goals), workers=workers, threads=threads,
                     space=runner.space.keys, resumed=existing,
                     budget={k: v for k, v in base.search.budget.model_dump().items() if v is not None})
    callbacks = list(callbacks)
    for cb in callbacks:
        cb.on_start(info)
    watcher = Watcher(st, callbacks)
    deadline = time.time() + timeout if timeout is not None else None
    t0 = time.perf_counter()
    message = None
    if workers == 1:
        status = work(st, study_dir, runner, Limits(target, deadline), journal=storage is None, notify=watcher.poll)
    else:
        job = Job(str(study_dir.path / SPEC), str(base.base_dir), [str(Path(p).resolve()) for p in plugins or []],
                  study, storage, target, deadline, seed, threads, os.getpid())
        status, message = _run_workers(job, workers, study_dir, watcher)
    watcher.poll()
    status = "interrupted" if status == "orphaned" else status
    result = finish(st, study_dir, runner, status, shown, time.perf_counter() - t0, message)
    for cb in callbacks:
        cb.on_end(result)
    return result


def _open(store: Any, shown: str, study: str, study_dir: StudyDir, base: "Spec", runner: TrialRunner, existing: bool,
          resume: bool) -> "optuna.Study":
    """Create the study (not over an existing one, nor beside trials of a lost one), or load it (only with
    ``resume``) and check that its objectives are still the spec's."""
    if existing and not resume:
        raise UsageError(f"study '{study}' already exists ({shown})",
                         hint="continue it (or add workers to it) with --resume, or start another with --study NAME")
    if resume and not existing:
        raise UsageError(f"there is no study '{study}' to resume ({shown})", hint="start it without --resume")
    if not existing and any(study_dir.path.glob("trial-*")):
        raise UsageError(f"{study_dir.path} holds trials of an earlier study that {shown} does not know",
                         hint=f"move or remove {study_dir.path}, or start another study with --study NAME")
    optuna = require_optuna()
    assert base.search is not None
    goals = runner.goals
    pruner = make_pruner(base.search, goals, base.train.epochs)
    if not existing:
        return optuna.create_study(storage=store, study_name=study, pruner=pruner,
                                   directions=[g.optuna_direction for g in goals])
    st = optuna.load_study(study_name=study, storage=store, pruner=pruner)
    now = ["maximize" if d.name == "MAXIMIZE" else "minimize" for d in st.directions]
    if now != [g.optuna_direction for g in goals]:
        raise UsageError(f"study '{study}' optimises {len(now)} objective(s) ({', '.join(now)}), but the spec now asks "
                         f"for {', '.join(g.label() for g in goals)}",
                         hint="keep the study's objectives to resume it, or start another with --study NAME")
    return st


def _record(study_dir: StudyDir, base: "Spec", study: str, storage: str, runner: TrialRunner, target: int, workers: int,
            existing: bool) -> None:
    """study.json (one entry per call) and spec.yaml (the spec as this call runs it, portable)."""
    info = study_dir.read_json(INFO) if existing else {}
    info.update({"study": study, "name": base.name, "storage": storage, "config": base.source,
                 "objectives": [{"name": g.name, "direction": g.direction} for g in runner.goals],
                 "space": runner.space.keys})
    info.setdefault("created", _now())
    info.setdefault("sessions", []).append({"started": _now(), "argv": sys.argv, "trials": target, "workers": workers})
    raw = portable(copy.deepcopy(base.raw), runner.space.marks.file, base.base_dir)
    before = study_dir.path / SPEC
    if existing and before.is_file():
        changed = _differences(yaml.safe_load(before.read_text(encoding="utf-8")), raw)
        if changed:
            warnings.warn(LayerforgeWarning(
                f"the spec differs from the one study '{study}' last ran with ({'; '.join(changed[:4])}"
                f"{'; ...' if len(changed) > 4 else ''}): the trials from now on use this one"), stacklevel=3)
    study_dir.write_text(SPEC, yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    study_dir.write_json(INFO, info)


def _differences(old: Any, new: Any, at: str = "") -> list[str]:
    """``path: old → new`` for each value that differs between two mappings."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in dict.fromkeys([*old, *new])
                for d in _differences(old.get(k), new.get(k), f"{at}.{k}" if at else str(k))]
    return [] if old == new else [f"{at or '<root>'}: {old!r} → {new!r}"]


def _run_workers(job: Job, n: int, study_dir: StudyDir, watcher: Watcher) -> tuple[str, str | None]:
    """N worker processes on this machine sharing the study; the storage is polled for the events. Ctrl-C is
    passed on to each (they stop after their current epoch, their trial queued again)."""
    study_dir.workers.mkdir(parents=True, exist_ok=True)
    env = {**os.environ}
    if job.threads:
        env.update({"OMP_NUM_THREADS": str(job.threads), "MKL_NUM_THREADS": str(job.threads)})
    procs, logs = [], []
    for i in range(n):
        log_path = study_dir.workers / f"worker-{i}.log"
        logs.append(log_path)
        with open(log_path, "w", encoding="utf-8") as log:
            # a new session: a terminal's Ctrl-C reaches this process only, which passes it on once
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "layerforge.search.worker", json.dumps(asdict(replace(job, seed=job.seed + 1000 * i)))],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True))
    interrupted = False
    while any(p.poll() is None for p in procs):
        try:
            time.sleep(0.5)
            watcher.poll()
        except KeyboardInterrupt:
            interrupted = True
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
    codes = [p.returncode for p in procs]
    failed = [(i, c) for i, c in enumerate(codes) if c not in EXIT.values()]
    message = "; ".join(f"worker {i} failed (exit {c}): {_last_line(logs[i])} (log: {logs[i]})" for i, c in failed) or None
    if failed and len(failed) == n:
        raise SearchError(f"every worker failed; {message}", hint="see the worker logs; rerun with --workers 1 to "
                                                                   "see the error here")
    status = "interrupted" if interrupted or 130 in codes else "timeout" if 124 in codes else "completed"
    return status, message


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no output)"


def run_job(job: Job) -> str:
    """A worker process's work (see :mod:`layerforge.search.worker`)."""
    optuna = require_optuna()
    if job.threads:
        import torch

        torch.set_num_threads(job.threads)
    base, runner, study_dir = prepare(job.config, None, job.plugins, job.study, base_dir=job.base_dir)
    assert base.search is not None
    store, _ = open_storage(study_dir, job.storage)
    st = optuna.load_study(study_name=job.study, storage=store, pruner=make_pruner(base.search, runner.goals, base.train.epochs),
                           sampler=make_sampler(base.search, len(runner.goals), job.seed, job.trials))
    return work(st, study_dir, runner, Limits(job.trials, job.deadline, job.parent), journal=job.storage is None)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")
