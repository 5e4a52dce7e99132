"""What a search tells the outside world: a callback protocol and the records it passes (Optuna-free).

The CLI renders these (a live Rich table, plain lines, JSON); notebooks and tests may write their own
callbacks. Callbacks are called in the calling thread: after each change of a trial this process runs,
or, with several worker processes, whenever the study's storage shows a change (polled).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StudyInfo:
    """Facts known when the search starts."""

    name: str  # the spec's name
    study: str
    study_dir: Path
    storage: str  # where the study lives, for display
    objectives: list[tuple[str, str]]  # (name, 'max'|'min')
    trials: int  # the study's target: finished trials in all
    finished_before: int  # finished trials when this call started (a resumed study)
    sampler: str
    pruner: str
    workers: int
    threads: int | None  # torch threads per worker (None: torch's default)
    space: list[str]
    resumed: bool = False
    budget: dict[str, float] = field(default_factory=dict)


@dataclass
class TrialRow:
    """One trial as the study records it."""

    number: int
    state: str  # running | complete | pruned | failed | waiting
    values: list[float] | None = None
    params: int | None = None
    flops: int | None = None
    latency_ms: float | None = None
    epoch: int | None = None  # the last epoch done
    epochs: int | None = None
    time_s: float | None = None
    reason: str | None = None  # why pruned or failed
    sampled: dict[str, Any] = field(default_factory=dict)  # parameter → value (as Optuna records it)
    metrics: dict[str, float] = field(default_factory=dict)  # the run's best-epoch record
    run_dir: str | None = None
    retry_of: int | None = None
    started: str | None = None  # ISO times, as the storage records them
    ended: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResult:
    """What ``search`` returns (and ``layerforge search --json`` prints)."""

    status: str  # completed | timeout | interrupted
    study: str
    study_dir: Path
    storage: str
    objectives: list[tuple[str, str]]
    trials: list[TrialRow]
    best: list[TrialRow]  # one objective: the best trial; several: the Pareto front, best first objective first
    best_spec: Path | None
    importances: dict[str, float]
    plots: list[Path]
    counts: dict[str, int]  # complete, pruned, invalid, over_budget, failed, running
    time_s: float
    message: str | None = None
    notes: list[str] = field(default_factory=list)

    def leaderboard(self, n: int = 10) -> list[TrialRow]:
        """The ``n`` best complete trials by the first objective."""
        done = [t for t in self.trials if t.state == "complete" and t.values]
        sign = -1.0 if self.objectives[0][1] == "max" else 1.0
        return sorted(done, key=lambda t: (sign * t.values[0], t.number))[:n]  # type: ignore[index]

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "study": self.study, "study_dir": str(self.study_dir),
                "storage": self.storage, "objectives": [{"name": n, "direction": d} for n, d in self.objectives],
                "counts": self.counts, "best": [t.to_dict() for t in self.best],
                "best_spec": str(self.best_spec) if self.best_spec else None, "importances": self.importances,
                "plots": [str(p) for p in self.plots], "time_s": round(self.time_s, 3), "message": self.message,
                "notes": self.notes, "trials": [t.to_dict() for t in self.trials]}


class SearchCallback:
    """Override what you need; every method is a no-op by default."""

    def on_start(self, info: StudyInfo) -> None:
        """The study is open and its space checked; no trial of this call has started."""

    def on_trial(self, row: TrialRow) -> None:
        """A trial started, finished an epoch, or ended (``row.state``)."""

    def on_end(self, result: SearchResult) -> None:
        """The search ended; the report, best.yaml and plots are written."""
