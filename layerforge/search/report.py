"""What a search leaves at the end: rows of every trial, the leaderboard or Pareto front, ``best.yaml``,
parameter importances, plots (PNG) and ``report.json``; and :class:`Watcher`, which turns changes in the
study's storage into :class:`~layerforge.search.events.TrialRow` events."""
from __future__ import annotations

import datetime as _dt
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import yaml

from .events import SearchCallback, SearchResult, TrialRow
from .studydir import BEST, REPORT, StudyDir

if TYPE_CHECKING:
    import optuna

    from .objective import Goal, TrialRunner

STATES = {"RUNNING": "running", "COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "WAITING": "waiting"}


def row_of(t: "optuna.trial.FrozenTrial") -> TrialRow:
    """A trial as a row: its state, values, costs, progress and why it was pruned or failed."""
    a = t.user_attrs
    state = STATES.get(t.state.name, t.state.name.lower())
    end = t.datetime_complete or _dt.datetime.now()
    reason = a.get("reason")
    if state == "failed" and reason is None:
        reason = "its worker stopped (killed or crashed); queued to run again"
    epoch = a.get("epoch", max(t.intermediate_values) if t.intermediate_values else None)
    return TrialRow(number=t.number, state=state, values=list(t.values) if state == "complete" and t.values else None,
                    params=a.get("params"), flops=a.get("flops"), latency_ms=a.get("latency_ms"), epoch=epoch,
                    epochs=a.get("epochs"), time_s=(end - t.datetime_start).total_seconds() if t.datetime_start else None,
                    reason=reason, sampled=dict(t.params), metrics=dict(a.get("metrics") or {}),
                    run_dir=a.get("run_dir"), retry_of=a.get("retry_of"),
                    started=t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else None,
                    ended=t.datetime_complete.isoformat(timespec="seconds") if t.datetime_complete else None)


class Watcher:
    """Calls ``on_trial`` for each trial whose state, progress or outcome changed since the last poll."""

    def __init__(self, study: "optuna.Study", callbacks: Iterable[SearchCallback]) -> None:
        self.study = study
        self.callbacks = list(callbacks)
        self.seen = {t.number: _signature(t) for t in study.get_trials(deepcopy=False)}

    def poll(self) -> None:
        if not self.callbacks:
            return
        for t in self.study.get_trials(deepcopy=False):
            sig = _signature(t)
            if self.seen.get(t.number) != sig:
                self.seen[t.number] = sig
                row = row_of(t)
                for cb in self.callbacks:
                    cb.on_trial(row)


def _signature(t: "optuna.trial.FrozenTrial") -> tuple:
    return t.state, t.user_attrs.get("epoch"), len(t.user_attrs), tuple(t.values or ())


# ---------------------------------------------------------------------------------------------
# The end of a search
# ---------------------------------------------------------------------------------------------
def finish(study: "optuna.Study", study_dir: StudyDir, runner: "TrialRunner", status: str, storage: str, time_s: float,
           message: str | None = None) -> SearchResult:
    """Rows, best trial(s), best.yaml, importances, plots and report.json."""
    goals = runner.goals
    trials = [row_of(t) for t in study.get_trials(deepcopy=False)]
    best = _best(study, goals)
    notes: list[str] = []
    best_spec = write_best(study_dir, runner, best[0]) if best else None
    importances = param_importances(study, goals, notes)
    plots = write_plots(study_dir, goals, trials, importances, notes)
    result = SearchResult(status=status, study=study.study_name, study_dir=study_dir.path, storage=storage,
                          objectives=[(g.name, g.direction) for g in goals], trials=trials,
                          best=[row_of(t) for t in best], best_spec=best_spec, importances=importances, plots=plots,
                          counts=counts(trials), time_s=time_s, message=message, notes=notes)
    study_dir.write_json(REPORT, result.to_dict())
    return result


def counts(rows: list[TrialRow]) -> dict[str, int]:
    """complete, pruned (by the pruner), invalid, over_budget, diverged, failed, running, waiting."""
    out = dict.fromkeys(("complete", "pruned", "invalid", "over_budget", "diverged", "failed", "running", "waiting"), 0)
    for r in rows:
        key = r.state
        if r.state == "pruned" and r.reason:
            key = ("invalid" if r.reason.startswith("invalid") else "over_budget" if r.reason.startswith("over budget")
                   else "diverged" if r.reason.startswith("training failed") else "pruned")
        out[key] = out.get(key, 0) + 1
    return out


def _best(study: "optuna.Study", goals: list["Goal"]) -> list["optuna.trial.FrozenTrial"]:
    """One objective: [the best trial]; several: the Pareto front, best by the first objective first."""
    if not any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
        return []
    front = list(study.best_trials)
    sign = [-1.0 if g.direction == "max" else 1.0 for g in goals]
    return sorted(front, key=lambda t: (*[s * v for s, v in zip(sign, t.values)], t.number))


def write_best(study_dir: StudyDir, runner: "TrialRunner", trial: "optuna.trial.FrozenTrial") -> Path:
    """The best trial's spec (search: removed, what the trial trained) as best.yaml, with the command that
    retrains it."""
    raw = runner.mapping(runner.space.values_of(trial.params))
    path = study_dir.path / BEST
    shown = ", ".join(f"{g.name} {_fmt(v)}" for g, v in zip(runner.goals, trial.values))
    head = (f"# Run: layerforge train {path}\n"
            f"# The best trial ({trial.number}) of search study '{study_dir.path.name[7:]}': {shown}.\n"
            f"# Its run: {trial.user_attrs.get('run_dir', '(trained on another machine)')}\n")
    return study_dir.write_text(BEST, head + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))


def param_importances(study: "optuna.Study", goals: list["Goal"], notes: list[str]) -> dict[str, float]:
    """Optuna's fANOVA importances of the parameters for the first objective (empty, with a note, when
    there are too few complete trials to tell)."""
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(complete) < 2:
        notes.append("parameter importances need at least 2 complete trials")
        return {}
    target = (lambda t: t.values[0]) if len(goals) > 1 else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imp = optuna.importance.get_param_importances(study, target=target)
    except (RuntimeError, ValueError) as e:
        notes.append(f"parameter importances: {e}")
        return {}
    return {k: round(float(v), 4) for k, v in imp.items()}


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------
def write_plots(study_dir: StudyDir, goals: list["Goal"], rows: list[TrialRow], importances: dict[str, float],
                notes: list[str]) -> list[Path]:
    """history.png (each trial's value of the first objective and the best so far), pareto.png (the first
    metric objective against FLOPs, or latency when that is an objective, with the front of trials no other
    beats on both) and importances.png. Drawn with matplotlib directly (Optuna's own matplotlib plots set a
    global style that would leak into the caller's figures)."""
    done = [r for r in rows if r.state == "complete" and r.values]
    if not done:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    study_dir.plots.mkdir(parents=True, exist_ok=True)
    written = [history_plot(rows, goals[0], study_dir.plots / "history.png")]
    pareto = pareto_plot(done, goals, study_dir.plots / "pareto.png")
    if pareto is not None:
        written.append(pareto)
    else:
        notes.append("no pareto.png: the trials have no objective reported per epoch")
    if importances:
        fig, ax = plt.subplots(figsize=(6, 0.4 * len(importances) + 1.2), dpi=100)
        names = list(importances)[::-1]
        ax.barh(names, [importances[n] for n in names], color="tab:blue")
        ax.set_xlabel(f"importance for {goals[0].name} (fANOVA)")
        ax.grid(axis="x", alpha=0.3)
        written.append(_save(fig, study_dir.plots / "importances.png"))
    return written


def history_plot(rows: list[TrialRow], goal: "Goal", path: Path) -> Path:
    """Each complete trial's value of ``goal`` by trial number, the best so far as a step line, and a tick
    at the bottom for each pruned trial."""
    import matplotlib.pyplot as plt

    done = [(r.number, r.values[0]) for r in rows if r.state == "complete" and r.values]
    pruned = [r.number for r in rows if r.state == "pruned"]
    best, line = None, []
    for n, v in done:
        best = v if best is None or (v > best if goal.direction == "max" else v < best) else best
        line.append((n, best))
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=100)
    ax.scatter([n for n, _ in done], [v for _, v in done], s=18, color="tab:blue", label="complete trials")
    ax.step([n for n, _ in line], [b for _, b in line], where="post", color="tab:red", lw=1.2, label="best so far")
    if pruned:
        ax.plot(pruned, [0] * len(pruned), "|", color="0.5", ms=10, transform=ax.get_xaxis_transform(),
                label=f"pruned ({len(pruned)})")
    ax.set_xlabel("trial")
    ax.set_ylabel(goal.name)
    ax.set_title(f"optimisation history: {goal.name} ({goal.direction})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def pareto_plot(rows: list[TrialRow], goals: list["Goal"], path: Path, extra: dict[str, tuple[float, float]] | None = None,
                title: str | None = None) -> Path | None:
    """Each complete trial as a point (x: FLOPs per sample, or latency_ms when that is an objective; y: the
    first per-epoch objective), the trials no other beats on both axes joined as the front. ``extra``: more
    labelled points (label → (x, y)), e.g. a baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = next((g for g in goals if g.per_epoch), None)
    if metric is None:
        return None
    x_name = "latency_ms" if any(g.name == "latency_ms" for g in goals) else "flops"
    pts = [(getattr(r, x_name), r.metrics.get(metric.name), r.number) for r in rows]
    pts = [(x, y, n) for x, y, n in pts if isinstance(x, (int, float)) and isinstance(y, (int, float)) and x > 0]
    if not pts:
        return None
    front = pareto_front([(x, y) for x, y, _ in pts], (False, metric.direction == "max"))
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=18, color="0.6", label="trials")
    fx = [pts[i] for i in sorted(front, key=lambda i: pts[i][0])]
    ax.step([p[0] for p in fx], [p[1] for p in fx], where="post", color="tab:red", lw=1.2)
    ax.scatter([p[0] for p in fx], [p[1] for p in fx], s=30, color="tab:red", label="front", zorder=3)
    for x, y, n in fx:
        ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
    for label, (x, y) in (extra or {}).items():
        ax.scatter([x], [y], marker="*", s=120, color="tab:blue", zorder=4, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("forward FLOPs per sample" if x_name == "flops" else "latency (ms, batch 1)")
    ax.set_ylabel(metric.name)
    ax.set_title(title or f"{metric.name} vs {'FLOPs' if x_name == 'flops' else 'latency'} (front: not beaten on both)",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def pareto_front(points: list[tuple[float, ...]], maximize: tuple[bool, ...]) -> list[int]:
    """Indices of the points no other point dominates (at least as good in every coordinate, better in one)."""
    signed = [tuple(-v if m else v for v, m in zip(p, maximize)) for p in points]  # all minimised

    def dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    return [i for i, p in enumerate(signed) if not any(dominates(q, p) for j, q in enumerate(signed) if j != i)]


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _fmt(v: float) -> str:
    return f"{v:.4g}" if isinstance(v, float) and math.isfinite(v) else str(v)
