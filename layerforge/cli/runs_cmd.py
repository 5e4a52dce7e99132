"""`layerforge runs [DIR]`: the runs under a folder, side by side with their best metrics."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .options import JsonOpt

MAX_METRICS = 3  # best-epoch metrics shown per run (all of them with --json)
MAX_EVALS = 2  # test-set evaluation metrics shown per run
MIN_COLUMNS = 2  # run and status are always shown
STATUS = {"completed": "done", "early_stopped": "early stop", "interrupted": "stopped", "failed": "failed",
          "running": "running"}


def runs(
    directory: Annotated[Path, typer.Argument(help="A folder of runs (or one run directory).")] = Path("runs"),
    json_: JsonOpt = False,
) -> None:
    """List runs (newest first): status, epochs, best epoch and its metrics, and any evaluations."""
    from ..engine.rundir import NOT_METRICS, find_runs, run_summary
    from ..errors import UsageError
    from .render import console, print_json, simple_table, wide_console

    if not directory.exists():
        raise UsageError(f"no such folder: {directory}", hint="train first (layerforge train CONFIG), or give the runs folder")
    rows = [run_summary(r) for r in find_runs(directory)]
    if json_:
        print_json(rows)
        return
    if not rows:
        console.print(f"no runs under {directory}")
        return
    metric_keys: list[str] = []
    for r in rows:
        for k in (r["best"] or {}):
            if k not in NOT_METRICS and k not in metric_keys:
                metric_keys.append(k)
    val_keys = [k for k in metric_keys if k.startswith("val_")]
    keys = (val_keys or metric_keys)[:MAX_METRICS]
    eval_keys = sorted({f"{s}_{m}" for r in rows for s, ms in r["evaluations"].items() for m in ms
                        if m != "loss" and s == "test"})[:MAX_EVALS]
    shown = [k.removeprefix("val_") for k in keys] + [k.replace("_", " ", 1) for k in eval_keys]
    cols = ["run", "status", "epochs", "best"] + shown + ["time"]
    table_rows = []
    for r in rows:
        best = r["best"] or {}
        ev = {f"{s}_{m}": v for s, ms in r["evaluations"].items() for m, v in ms.items()}
        table_rows.append([
            _short(r["path"], directory), STATUS.get(r["status"], r["status"]), r["epochs"], r["best_epoch"] if r["best_epoch"] else "-",
            *[_fmt(best.get(k)) for k in keys], *[_fmt(ev.get(k)) for k in eval_keys],
            f"{r['time_s']:.1f}s" if isinstance(r["time_s"], (int, float)) else "-",
        ])
    what = "validation" if val_keys else "training"
    out = console if console.is_terminal else wide_console()  # piped: the table keeps its natural width
    out.print(f"[bold]{len(rows)} run{'s' if len(rows) != 1 else ''} under {directory}[/] "
              f"(metrics: the best epoch's {what} values" + (", then the test evaluation" if eval_keys else "") + ")")
    shown_cols, shown_rows, hidden = fit_columns(cols, table_rows, out.width, keep=MIN_COLUMNS)
    out.print(simple_table(None, shown_cols, shown_rows, set(range(2, len(shown_cols))), no_wrap={0}))
    if hidden:
        out.print(f"[dim]{len(hidden)} column{'s' if len(hidden) != 1 else ''} hidden to fit {out.width} columns "
                  f"({', '.join(hidden)}): widen the terminal, pipe the output, or use --json[/]")


def fit_columns(cols: list[str], rows: list[list[object]], width: int, keep: int) -> tuple[list[str], list[list[object]], list[str]]:
    """Drop columns from the right (never the first ``keep``, never the run id) until the table's natural
    width fits ``width``: run ids stay whole, other columns give way."""
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) + 3 for i, c in enumerate(cols)]  # + padding, border
    n = len(cols)
    while n > keep and sum(widths[:n]) + 1 > width:
        n -= 1
    return cols[:n], [r[:n] for r in rows], cols[n:]


def _short(path: str, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root)) or "."
    except ValueError:
        return path


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


def register(app: typer.Typer) -> None:
    app.command("runs")(runs)
