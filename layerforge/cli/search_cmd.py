"""`layerforge search`: architecture and hyper-parameter search over a spec's ``search:`` section (Optuna).

On a terminal: a live table of the trials (state, value, params, FLOPs, epoch, time), then the
leaderboard (or the Pareto front), the best spec, parameter importances and plots. Not a terminal: one
plain line per trial as it ends. ``--json``: only the result, as JSON. The library does the work
(:func:`layerforge.search`); this module only draws its events.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from .options import ConfigArg, JsonOpt, PluginsOpt, SetOpt

if TYPE_CHECKING:
    from ..search.events import SearchResult, StudyInfo, TrialRow

LIVE_ROWS = 14  # trials shown in the live table (running ones, then the latest)
BOARD_ROWS = 10


def search(
    config: ConfigArg,
    trials: Annotated[Optional[int], typer.Option("--trials", "-n", help="Trials in the study in all, pruned ones "
                                                  "included (default: search.trials).", show_default=False)] = None,
    timeout: Annotated[Optional[float], typer.Option("--timeout", help="Start no trial after this many seconds "
                                                     "(running ones finish).", show_default=False)] = None,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Processes on this machine sharing the study "
                                         "(torch threads are split between them).")] = 1,
    storage: Annotated[Optional[str], typer.Option("--storage", help="An Optuna storage URL (sqlite:///s.db, "
                                                   "postgresql://user:pw@host/db) for workers on several machines "
                                                   "(default: a journal file in the study directory).",
                                                   show_default=False)] = None,
    study: Annotated[str, typer.Option("--study", help="The study's name: its folder is "
                                       "<train.out>/<name>/search-<study>.")] = "default",
    resume: Annotated[bool, typer.Option("--resume", help="Continue the study after a crash or Ctrl-C (or add "
                                         "workers to a running one).")] = False,
    set_: SetOpt = None,
    plugins: PluginsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Search architectures and hyper-parameters: each trial trains a sampled spec into its own run directory;
    at the end the best spec (best.yaml), the leaderboard, parameter importances and plots."""
    from .. import search as lf_search

    view = [] if json_ else [_rich_view() if sys.stdout.isatty() else _plain_view()]
    result = lf_search(str(config), overrides=set_ or [], plugins=plugins or [], trials=trials, timeout=timeout,
                       workers=workers, storage=storage, study=study, resume=resume, callbacks=view)
    if json_:
        from .render import print_json

        print_json(result.to_dict())
    if result.status == "interrupted":
        raise typer.Exit(130)


# ---------------------------------------------------------------------------------------------
# Text shared by the views
# ---------------------------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


def _count(v: Any) -> str:
    from ..text import human_count

    return human_count(v) if isinstance(v, (int, float)) else "-"


def _secs(t: float | None) -> str:
    if t is None:
        return "-"
    return f"{t:.1f}s" if t < 100 else f"{int(t // 60)}m{int(t % 60):02d}s"


def _values(row: "TrialRow", names: list[str]) -> str:
    if row.values:
        return "  ".join(f"{n} {_fmt(v)}" for n, v in zip(names, row.values))
    return row.reason or ""


def _sampled(row: "TrialRow", width: int = 90) -> str:
    """``conv1.filters=16, optimizer.lr=0.002`` (the last two parts of each key; null for a dropped entry)."""
    text = ", ".join(f"{'.'.join(k.split('.')[-2:])}={'null' if v is None else _fmt(v)}" for k, v in row.sampled.items())
    if row.retry_of is not None:
        text = f"(re-run of trial {row.retry_of}) {text}"
    return text if len(text) <= width else text[: width - 1] + "…"


def _start_lines(info: "StudyInfo") -> list[str]:
    goals = ", ".join(f"{n} ({d})" for n, d in info.objectives)
    again = f", {info.finished_before} finished before" if info.resumed else ""
    threads = f", {info.threads} torch threads each" if info.threads else ""
    budget = ("; budget " + ", ".join(f"{k} {_count(v)}" for k, v in info.budget.items())) if info.budget else ""
    return [f"{'Resuming' if info.resumed else 'Searching'} {info.name} (study '{info.study}'): {info.trials} trials"
            f"{again}, objective {goals}, sampler {info.sampler}, pruner {info.pruner}, {info.workers} "
            f"worker{'s' if info.workers != 1 else ''}{threads}{budget}",
            f"space: {', '.join(info.space)}",
            f"study: {info.study_dir} ({info.storage})"]


def _end_lines(result: "SearchResult") -> list[str]:
    c = result.counts
    names = [n for n, _ in result.objectives]
    parts = [f"{c[k]} {label}" for k, label in (("complete", "complete"), ("pruned", "pruned"), ("invalid", "invalid"),
                                                 ("over_budget", "over budget"), ("diverged", "diverged"),
                                                 ("failed", "failed"), ("waiting", "queued")) if c.get(k)]
    word = {"completed": "finished", "timeout": "stopped by --timeout", "interrupted": "interrupted"}[result.status]
    lines = [f"{word}: {len(result.trials)} trials in the study ({', '.join(parts) or 'none'}); "
             f"{_secs(result.time_s)} this run"]
    if result.message:
        lines.append(result.message)
    if result.best:
        b = result.best[0]
        what = "best" if len(names) == 1 else f"Pareto front: {len(result.best)} trials; best {names[0]}"
        lines.append(f"{what}: trial {b.number}  {_values(b, names)}  params {_count(b.params)}  FLOPs "
                     f"{_count(b.flops)}" + (f"  → {b.run_dir}" if b.run_dir else ""))
    if result.best_spec:
        lines.append(f"best spec: {result.best_spec}   (retrain: layerforge train {result.best_spec})")
    if result.importances:
        lines.append("importances: " + " · ".join(f"{k} {v:.2f}" for k, v in list(result.importances.items())[:6]))
    if result.plots:
        lines.append("plots: " + ", ".join(str(p) for p in result.plots))
    lines += [f"note: {n}" for n in result.notes]
    if result.status != "completed":
        lines.append(f"continue with: {_resume_command()}")
    return lines


def _resume_command() -> str:
    """This command line with --resume (the same spec and --set: the study continues as it started)."""
    import shlex

    args = [a for a in sys.argv[1:] if a != "--resume"]
    return "layerforge " + shlex.join([*args, "--resume"])


def _board(result: "SearchResult") -> tuple[list[str], list[list[Any]]]:
    names = [n for n, _ in result.objectives]
    rows = result.best if len(names) > 1 else result.leaderboard(BOARD_ROWS)
    cols = ["trial", *names, "params", "FLOPs", "epochs", "time", "sampled"]
    return cols, [[r.number, *[_fmt(v) for v in (r.values or [])], _count(r.params), _count(r.flops),
                   _fmt(r.epoch), _secs(r.time_s), _sampled(r)] for r in rows[:BOARD_ROWS]]


# ---------------------------------------------------------------------------------------------
# Views (callbacks that draw), built inside the command so `layerforge --help` stays light
# ---------------------------------------------------------------------------------------------
def _plain_view():
    """One line per trial as it ends (for CI logs, nohup and pipes)."""
    from ..search.events import SearchCallback

    class Plain(SearchCallback):
        def on_start(self, info) -> None:
            self.names = [n for n, _ in info.objectives]
            print("\n".join(_start_lines(info)), flush=True)

        def on_trial(self, row) -> None:
            if row.state not in ("running", "waiting"):
                epochs = f"  {row.epoch}/{row.epochs} epochs" if row.epoch else ""
                print(f"trial {row.number:<3} {row.state:<8} {_values(row, self.names)}  params {_count(row.params)}"
                      f"  FLOPs {_count(row.flops)}{epochs}  {_secs(row.time_s)}  {_sampled(row)}", flush=True)

        def on_end(self, result) -> None:
            print("\n".join(_end_lines(result)), flush=True)

    return Plain()


def _rich_view():
    """A live table of the trials, then the leaderboard and the rest of the report."""
    from rich.live import Live
    from rich.markup import escape
    from rich.table import Table

    from ..search.events import SearchCallback
    from .render import console, simple_table

    colour = {"complete": "green", "pruned": "yellow", "failed": "red", "running": "cyan", "waiting": "dim"}

    class RichView(SearchCallback):
        def __init__(self) -> None:
            self.rows: dict[int, Any] = {}
            self.live: Live | None = None

        def on_start(self, info) -> None:
            self.info = info
            self.names = [n for n, _ in info.objectives]
            lines = _start_lines(info)
            console.print(f"[bold]{escape(lines[0])}[/]")
            for line in lines[1:]:
                console.print(f"[dim]{escape(line)}[/]")
            self.live = Live(self._table(), console=console, refresh_per_second=4, transient=False)
            self.live.start()

        def on_trial(self, row) -> None:
            self.rows[row.number] = row
            if self.live is not None:
                self.live.update(self._table())

        def _table(self) -> Table:
            t = Table(header_style="bold", title_justify="left",
                      title=f"trials: {sum(r.state in ('complete', 'pruned') for r in self.rows.values())} finished "
                            f"this run, {sum(r.state == 'running' for r in self.rows.values())} running")
            for c in ("trial", "state", " / ".join(self.names), "params", "FLOPs", "epoch", "time", "sampled"):
                t.add_column(c, justify="right" if c in ("trial", "params", "FLOPs", "epoch", "time") else "left",
                             overflow="ellipsis", no_wrap=c != "sampled")
            running = [r for r in self.rows.values() if r.state == "running"]
            rest = sorted((r for r in self.rows.values() if r.state != "running"), key=lambda r: -r.number)
            for r in (running + rest)[:LIVE_ROWS]:
                value = "  ".join(_fmt(v) for v in r.values) if r.values else (r.reason or "")
                t.add_row(str(r.number), f"[{colour.get(r.state, 'white')}]{r.state}[/]", escape(value),
                          _count(r.params), _count(r.flops), f"{r.epoch or '-'}/{r.epochs or '-'}", _secs(r.time_s),
                          escape(_sampled(r, 60)))
            return t

        def on_end(self, result) -> None:
            if self.live is not None:
                self.live.stop()
            cols, rows = _board(result)
            title = "Pareto front" if len(self.names) > 1 else f"leaderboard (best {len(rows)} by {self.names[0]})"
            if rows:
                console.print(simple_table(title, cols, rows, right={0, 2, 3, 4}))
            lines = _end_lines(result)
            tone = {"completed": "green", "timeout": "yellow", "interrupted": "yellow"}[result.status]
            console.print(f"[bold {tone}]{escape(lines[0])}[/]")
            for line in lines[1:]:
                console.print(escape(line))

    return RichView()


def register(app: typer.Typer) -> None:
    app.command("search")(search)

