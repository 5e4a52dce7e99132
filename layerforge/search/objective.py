"""One trial: sample, validate through the front door, check the budget, train, measure.

::

    space.sample(trial) ─▶ mapping ─▶ build.load ─▶ (Spec, Graph) ─▶ params, FLOPs (and latency) vs budget
        invalid or over budget: pruned with its reason, nothing trained, no run directory
    ─▶ engine train (out = <study>/trial-<k>, an ordinary run directory) ─ per-epoch events ─▶ report/prune
    ─▶ values: the objective metrics at the run's best epoch, params, flops, latency_ms

The trial's spec is the sampled mapping with ``search:`` removed and three things made explicit, so that
``layerforge train`` on it reproduces the trial: the early-stopping monitor (the first objective, when the
spec left it on auto: the best epoch is then the one the objective ranks), no per-trial plots unless the
spec asked, and absolute data paths (the trial's spec lives in the study directory).
"""
from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..engine.events import Callback, RunInfo
from ..engine.rundir import NOT_METRICS
from ..errors import DataError, Issue, SpecError, TrainingError, format_path
from ..spec.loader import Marks
from ..text import suggest
from .schema import MEASURES, BudgetSpec
from .space import Space

if TYPE_CHECKING:
    import optuna
    from torch import nn

    from ..graph import Graph
    from ..spec.schema import Spec

DATA_PATHS = ("path", "val_path", "test_path", "target_path")


@dataclass(frozen=True)
class Goal:
    """A resolved objective: its name, 'max' or 'min', and whether the run reports it every epoch."""

    name: str
    direction: str

    @property
    def per_epoch(self) -> bool:
        return self.name not in MEASURES

    @property
    def optuna_direction(self) -> str:
        return "maximize" if self.direction == "max" else "minimize"

    def label(self) -> str:
        return f"{self.name} ({self.direction})"


def resolve_goals(spec: "Spec", graph: "Graph") -> list[Goal]:
    """The search's objectives with their directions; a metric the runs will not report is a located error."""
    from ..data.schema import DATASET_TASKS
    from ..engine import rules
    from ..engine.schema import METRICS

    assert spec.search is not None
    data, train = spec.data, spec.train
    has_val = data is not None and (data.val_fraction > 0 or data.val_path is not None)
    wanted = list(spec.search.objective) or []
    if not wanted:
        return [Goal("val_loss" if has_val else "loss", "min")]
    task = (data.task or DATASET_TASKS.get(data.dataset or "")) if data is not None else None
    out = graph.shape_of(graph.outputs[0]) if len(graph.outputs) == 1 and graph.outputs[0] not in graph.inputs \
        else None
    kind = rules.head_kind(train.loss, task, out) if out is not None else None
    metrics = list(train.metrics) if train.metrics is not None else (
        rules.default_metrics(task, kind) if kind is not None else list(METRICS))
    known = ["loss", *metrics]
    known += [f"val_{m}" for m in known] if has_val else []
    goals, issues = [], []
    for i, o in enumerate(wanted):
        at = ("search", "objective", i) if isinstance(spec.raw.get("search", {}).get("objective"), list) \
            else ("search", "objective")
        if o.name not in MEASURES and o.name not in known:
            why = (" (there is no validation split: set data.val)" if o.name.startswith("val_") and not has_val else "")
            hint = suggest(o.name, [*known, *MEASURES]) or f"the runs report: {', '.join(known)}; or use " \
                                                              f"{', '.join(MEASURES)}"
            issues.append(spec.marks.locate(at, f"objective '{o.name}' is not reported by the runs{why}", hint))
            continue
        default = "min" if o.name in MEASURES else rules.mode_of(o.name)
        goals.append(Goal(o.name, o.direction or default))
    if issues:
        raise SpecError(issues)
    return goals


@dataclass
class Outcome:
    """How a trial ended. ``state``: complete | pruned | failed | interrupted."""

    state: str
    values: list[float] | None = None
    reason: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)  # recorded on the trial (user attributes)


@dataclass
class TrialRunner:
    """What a worker needs to run trials; fixed for a study."""

    space: Space
    goals: list[Goal]
    budget: BudgetSpec
    study_dir: Path
    base: "Spec"
    plugins: list[str]
    prune: bool  # single objective reported per epoch, pruner not none

    def mapping(self, values: dict[str, Any], marks: Marks | None = None, origin: str = "search") -> dict[str, Any]:
        """The trial's spec mapping (see the module docstring)."""
        raw = self.space.apply(values, marks, origin)
        train = raw.get("train") if isinstance(raw.get("train"), dict) else {}
        raw["train"] = train
        first = self.goals[0]
        es = train.get("early_stopping") if isinstance(train.get("early_stopping"), dict) else {}
        if first.per_epoch and es.get("monitor", "auto") == "auto":
            train["early_stopping"] = {**es, "monitor": first.name, "mode": first.direction}
        train.setdefault("plots", False)
        return portable(raw, self.space.marks.file, self.base.base_dir)

    def run(self, trial: "optuna.Trial", notify: Callable[[], None] = lambda: None) -> Outcome:
        """Run one trial to its outcome (the caller tells the study)."""
        from .. import build

        values = self.space.sample(trial)
        marks = copy.deepcopy(self.space.marks)
        raw = self.mapping(values, marks, origin=f"search trial {trial.number}")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                spec, graph = build.load(raw, plugins=self.plugins, marks=marks, base_dir=self.base.base_dir)
        except SpecError as e:
            return Outcome("pruned", reason=f"invalid: {_issues_text(e.issues)}",
                           attrs={"issues": [_issue_text(i) for i in e.issues]})
        attrs: dict[str, Any] = {"epochs": spec.train.epochs}
        notes = sorted({str(w.message) for w in caught})
        if notes:
            attrs["warnings"] = notes
        attrs.update(costs(graph))
        over = self._over_budget(attrs)
        if over is None and self.budget.max_latency_ms is not None:
            attrs["latency_ms"] = latency_ms(spec, graph, build.module(spec, graph))
            over = self._over_budget(attrs)
        if over is not None:
            return Outcome("pruned", reason=f"over budget: {over}", attrs=attrs)
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        return self._train(trial, spec, graph, attrs, notify)

    def _over_budget(self, attrs: dict[str, Any]) -> str | None:
        b = self.budget
        for name, limit in (("params", b.max_params), ("flops", b.max_flops), ("latency_ms", b.max_latency_ms)):
            value = attrs.get(name)
            if limit is not None and value is not None and value > limit:
                return f"{name} {_num(value)} > max_{name} {_num(limit)}"
        return None

    def _train(self, trial: "optuna.Trial", spec: "Spec", graph: "Graph", attrs: dict[str, Any],
               notify: Callable[[], None]) -> Outcome:
        from ..engine.api import train
        from ..engine.rundir import RunDir

        out = self.study_dir / f"trial-{trial.number}"
        attrs["run_dir"] = str(out)
        trial.set_user_attr("run_dir", str(out))
        report = _Report(trial, self.goals[0] if len(self.goals) == 1 and self.goals[0].per_epoch else None,
                         self.prune, notify)
        try:
            result = train((spec, graph), out=out, callbacks=[report])
        except TrainingError as e:  # diverged (a NaN loss): a bad region of the space, not a broken study
            return Outcome("pruned", reason=f"training failed: {e.message}", attrs=attrs)
        except DataError as e:
            return Outcome("pruned", reason=f"invalid: data: {e.message}", attrs=attrs)
        if report.pruned_at is not None:
            RunDir(out).update_run(status="pruned", message=f"pruned after epoch {report.pruned_at}")
            return Outcome("pruned", reason=f"pruned after epoch {report.pruned_at}", attrs=attrs)
        if result.status == "interrupted":
            return Outcome("interrupted", reason=result.message, attrs=attrs)
        record = result.best or result.last or {}
        attrs["best_epoch"] = result.best_epoch
        attrs["metrics"] = {k: v for k, v in record.items()
                            if k not in NOT_METRICS and isinstance(v, (int, float))}
        if any(g.name == "latency_ms" for g in self.goals) and "latency_ms" not in attrs:
            attrs["latency_ms"] = latency_ms(spec, graph, result.model)
        values = []
        for g in self.goals:
            v = attrs["metrics"].get(g.name) if g.per_epoch else attrs.get(g.name)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                return Outcome("failed", reason=f"the run reported no finite {g.name} ({v!r})", attrs=attrs)
            values.append(float(v))
        return Outcome("complete", values=values, attrs=attrs)


def portable(raw: dict[str, Any], spec_file: str, base_dir: Path) -> dict[str, Any]:
    """``raw`` with relative data paths (from ``base_dir``) and plugin files (from the spec file's folder) made
    absolute, so that the mapping works wherever it is saved. Changes and returns ``raw``."""
    def absolute(path: str, folder: Path) -> str:
        return path if Path(path).expanduser().is_absolute() else str((folder / path).resolve())

    data = raw.get("data")
    if isinstance(data, dict):
        for key in DATA_PATHS:
            if isinstance(data.get(key), str):
                data[key] = absolute(data[key], base_dir)
    plugins = raw.get("plugins")
    if isinstance(plugins, list):
        folder = Path(spec_file).parent if not spec_file.startswith("<") else Path.cwd()
        raw["plugins"] = [absolute(p, folder) if isinstance(p, str) else
                          {**p, "path": absolute(p["path"], folder)} if isinstance(p, dict) and isinstance(p.get("path"), str)
                          else p for p in plugins]
    return raw


class _Report(Callback):
    """The engine callback of a trial: records progress, reports the objective per epoch, prunes."""

    def __init__(self, trial: "optuna.Trial", goal: Goal | None, prune: bool, notify: Callable[[], None]) -> None:
        self.trial, self.goal, self.prune, self.notify = trial, goal, prune, notify
        self.pruned_at: int | None = None
        self._stop: Callable[[], None] = lambda: None

    def on_start(self, info: RunInfo) -> None:
        self._stop = info.request_stop

    def on_epoch_end(self, record: dict[str, Any], improved: bool) -> None:
        epoch = int(record["epoch"])
        self.trial.set_user_attr("epoch", epoch)
        value = record.get(self.goal.name) if self.goal is not None else None
        if isinstance(value, (int, float)) and math.isfinite(value):
            self.trial.report(float(value), epoch)
            if self.prune and self.trial.should_prune():
                self.pruned_at = epoch
                self._stop()
        self.notify()


def costs(graph: "Graph") -> dict[str, Any]:
    """Parameters (counted on the meta device) and forward FLOPs per sample, from the validated graph."""
    from ..graph import param_counts

    flops = [n.layer.flops(n.in_shapes, n.out_shape) for n in graph.nodes]
    out: dict[str, Any] = {"params": sum(c[0] for c in param_counts(graph).values()),
                           "flops": sum(f for f in flops if f is not None)}
    uncounted = [n.name for n, f in zip(graph.nodes, flops) if f is None]
    if uncounted:
        out["flops_uncounted"] = uncounted
    return out


def latency_ms(spec: "Spec", graph: "Graph", model: "nn.Module") -> float:
    """Median inference latency of one sample, in ms: the profiler's inputs and adaptive timing rule (the
    spec's ``profile:`` settings), on the model's device, in eval mode. The model is left as it was."""
    import torch

    from ..analysis.profiler import make_inputs
    from ..analysis.timing import TimingSettings, measure, synchronizer

    p = spec.profile
    settings = TimingSettings(warmup=p.warmup, min_run_time=p.min_run_time, max_run_time=p.max_run_time,
                              min_repeats=p.min_repeats, threshold=p.threshold)
    param = next(model.parameters(), None)
    device = str(param.device) if param is not None else "cpu"
    xs = make_inputs(graph, 1, device)
    was = model.training
    model.eval()
    try:
        with torch.inference_mode():
            stats = measure(lambda: model(*xs), settings, synchronizer(device))
    finally:
        model.train(was)
    return stats.median * 1000.0


def _issue_text(issue: Issue) -> str:
    where = f"{format_path(issue.path)}: " if issue.path else ""
    layer = f"({issue.layer}) " if issue.layer else ""
    return f"{where}{layer}{issue.message}"


def _issues_text(issues: list[Issue]) -> str:
    more = f" (+{len(issues) - 1} more)" if len(issues) > 1 else ""
    return _issue_text(issues[0]) + more if issues else "invalid spec"


def _num(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() and abs(v) < 1e15 else f"{v:.4g}"
