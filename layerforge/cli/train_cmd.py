"""`layerforge train`: train a spec's model, showing progress; leaves a run directory.

On a terminal: a Rich bar per epoch (steps, samples/s, ETA, live loss), then an epoch row, then a
summary. Not a terminal (CI, nohup, a pipe): one plain line per epoch, no redraws. ``--quiet`` prints
only the run directory; ``--json`` prints only the result as JSON.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from .options import JsonOpt, PluginsOpt, SetOpt, TrustPluginsOpt

if TYPE_CHECKING:
    from ..engine.events import TrainResult


def train(
    config: Annotated[Optional[Path], typer.Argument(help="A layerforge spec (YAML). Omit with --resume.",
                                                     show_default=False)] = None,
    set_: SetOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="The run directory to create (default: "
                                                "<train.out>/<name>/<timestamp>).", show_default=False)] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue a run directory exactly where it "
                                                   "stopped (its spec.yaml is used; --set may change train.*).",
                                                   show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the run directory.")] = False,
    json_: JsonOpt = False,
    plugins: PluginsOpt = None,
    trust_plugins: TrustPluginsOpt = False,
    log: Annotated[Optional[list[str]], typer.Option("--log", metavar="tensorboard|csv", help="Experiment logs in "
                                                     "the run directory (repeatable; sets train.log).",
                                                     show_default=False)] = None,
) -> None:
    """Train a model from a spec: progress per epoch, then a summary; writes runs/<name>/<timestamp>/."""
    from ..errors import UsageError

    if (config is None) == (resume is None):
        raise UsageError("give a CONFIG to start a run, or --resume RUN_DIR to continue one (not both)",
                         hint="e.g. layerforge train configs/cnn_digits.yaml")
    from .. import train as lf_train

    view = make_view(quiet=quiet, json_mode=json_, tty=sys.stdout.isatty())
    overrides = [*(set_ or []), *([f"train.log=[{', '.join(log)}]"] if log else [])]
    result = lf_train(str(config) if config is not None else None, overrides=overrides, out=out, resume=resume,
                      callbacks=[view], plugins=plugins or [], trust_plugins=trust_plugins)
    _finish(result, quiet, json_)


def _finish(result: "TrainResult", quiet: bool, json_: bool) -> None:
    import os

    from .render import print_json

    if os.environ.get("RANK", "0") != "0":  # data-parallel (torchrun): rank 0 reports
        pass
    elif json_:
        print_json(result.to_dict())
    elif quiet:
        print(result.run_dir)
    if result.status == "interrupted":
        raise typer.Exit(130)


# ---------------------------------------------------------------------------------------------
# Views (callbacks that draw). Built inside the command so `layerforge --help` imports no torch/Rich
# progress machinery.
# ---------------------------------------------------------------------------------------------
def _fmt(v: object) -> str:
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return str(v)
        return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return str(v)


def _secs(t: float) -> str:
    return f"{t:.3f}s" if t < 0.1 else f"{t:.2f}s" if t < 100 else f"{t:.0f}s"


TIMES = {"epoch", "step", "time_s", "val_time_s", "compile_s", "samples_per_s", "lr"}  # engine.rundir.NOT_METRICS (a test keeps them equal; importing it here would slow --help)


def _columns(record: dict) -> list[str]:
    skip = TIMES
    keys = [k for k in record if k not in skip and not k.startswith("val_")]
    return keys + [k for k in record if k.startswith("val_")] + (["lr"] if "lr" in record else [])


def _start_line(info) -> str:
    what = "Resuming" if info.resumed else "Training"
    val = f", {info.val_samples:,} val" if info.val_samples else ""
    where = f" → {info.run_dir}" if info.run_dir else ""
    first = f" from epoch {info.start_epoch}" if info.resumed else ""
    frozen = (f" ({info.trainable_params:,} trainable)" if info.trainable_params is not None
              and info.trainable_params != info.params else "")
    return (f"{what} {info.name}{first}: {info.params:,} params{frozen}, {info.train_samples:,} train{val} samples, "
            f"{info.steps_per_epoch} steps/epoch × {info.epochs} epochs on {info.device} ({info.precision}), "
            f"loss {info.loss}{where}")


def _summary_lines(result: "TrainResult") -> list[str]:
    lines = []
    status = {"completed": "finished", "early_stopped": "stopped early", "interrupted": "interrupted",
              "failed": "failed"}.get(result.status, result.status)
    lines.append(f"{status} after {result.epochs_run} epoch{'s' if result.epochs_run != 1 else ''} in "
                 f"{result.time_s:.1f}s" + (f" — {result.message}" if result.message else ""))
    if result.best is not None:
        shown = {k: v for k, v in result.best.items() if k not in TIMES}
        lines.append(f"best epoch {result.best_epoch} by {result.monitor}: "
                     + "  ".join(f"{k} {_fmt(v)}" for k, v in shown.items()))
    if result.run_dir is not None:
        lines.append(f"run saved to {result.run_dir}")
        if result.status == "interrupted":
            lines.append(f"continue with: layerforge train --resume {result.run_dir}")
        else:
            lines.append(f"next: layerforge evaluate {result.run_dir}  ·  layerforge predict {result.run_dir} --input FILE")
    return lines


def make_view(quiet: bool, json_mode: bool, tty: bool):
    """The callback that shows training: Rich on a terminal, plain lines otherwise, nothing when quiet/json."""
    from ..engine.events import Callback

    if quiet or json_mode:
        return Callback()
    return _rich_view() if tty else _plain_view()


def _plain_view():
    """One line per epoch, flushed (for CI logs, nohup and pipes)."""
    from ..engine.events import Callback

    class Plain(Callback):
        def on_start(self, info) -> None:
            self.epochs = info.epochs
            self.monitor = info.monitor
            self._print(_start_line(info))
            if info.speed:
                self._print(f"speed: {info.speed}")
            for n in info.notes:
                self._print(f"note: {n}")

        def on_note(self, message: str) -> None:
            self._print(f"note: {message}")

        def on_epoch_end(self, record: dict, improved: bool) -> None:
            parts = [f"epoch {record['epoch']}/{self.epochs}"]
            parts += [f"{k} {_fmt(record[k])}" for k in _columns(record)]
            parts.append(_secs(record.get("time_s", 0)))
            parts.append(f"{record.get('samples_per_s', 0):,.0f} samples/s")
            if improved:
                parts.append(f"* best {self.monitor}")
            self._print("  ".join(parts))

        def on_end(self, result) -> None:
            for line in _summary_lines(result):
                self._print(line)

        @staticmethod
        def _print(line: str) -> None:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    return Plain()


def _rich_view():
    """A progress bar per epoch with live loss, epoch rows printed above it, then a summary."""
    import time

    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn
    from rich.table import Table

    from ..engine.events import Callback
    from .render import console

    class RichView(Callback):
        def __init__(self) -> None:
            self.progress: Progress | None = None
            self.task = None
            self.header_done = False
            self.cols: list[str] = []
            self._last = 0.0

        def on_start(self, info) -> None:
            self.info = info
            console.print(f"[bold]{escape(_start_line(info))}[/]")
            if info.speed:
                console.print(f"[dim]speed: {escape(info.speed)}[/]")
            for n in info.notes:
                console.print(f"[dim]note: {escape(n)}[/]")
            self.progress = Progress(
                TextColumn("[bold blue]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("steps"), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
                TimeRemainingColumn(), TextColumn("{task.fields[loss]}"),
                console=console, transient=True, refresh_per_second=8)
            self.progress.start()

        def on_epoch_start(self, epoch: int, steps: int) -> None:
            assert self.progress is not None
            if self.task is not None:
                self.progress.remove_task(self.task)
            self.task = self.progress.add_task(f"epoch {epoch}/{self.info.epochs}", total=steps, rate="", loss="")
            self._t0 = time.perf_counter()
            self._last = 0.0

        def on_step(self, epoch: int, step: int, loss) -> None:
            now = time.perf_counter()
            if now - self._last < 0.1 and step < self.info.steps_per_epoch:
                return  # redraw at most ~10×/s; float(loss) syncs with the device, so only then
            self._last = now
            rate = step * self.info.batch_size / max(now - self._t0, 1e-9)
            self.progress.update(self.task, completed=step, rate=f"{rate:,.0f} samples/s", loss=f"loss {float(loss):.4g}")

        def on_note(self, message: str) -> None:
            (self.progress.console if self.progress else console).print(f"[dim]note: {escape(message)}[/]")

        def on_epoch_end(self, record: dict, improved: bool) -> None:
            if not self.header_done:
                self.cols = _columns(record)
                self.header_done = True
                self._row(["epoch", *self.cols, "time", ""], header=True)
            vals = [f"{record['epoch']}/{self.info.epochs}", *[_fmt(record.get(k, "")) for k in self.cols],
                    _secs(record.get("time_s", 0)), "[green]* best[/]" if improved else ""]
            self._row(vals)

        def _row(self, vals: list[str], header: bool = False) -> None:
            t = Table.grid(padding=(0, 2))
            for i, _ in enumerate(vals):
                t.add_column(justify="left" if i in (0, len(vals) - 1) else "right", min_width=10 if i else 7)
            t.add_row(*[f"[bold]{v}[/]" if header else v for v in vals])
            (self.progress.console if self.progress else console).print(t)

        def on_end(self, result) -> None:
            if self.progress is not None:
                self.progress.stop()
            colour = {"completed": "green", "early_stopped": "green", "interrupted": "yellow"}.get(result.status, "red")
            lines = _summary_lines(result)
            console.print(f"[bold {colour}]{escape(lines[0])}[/]")
            for line in lines[1:]:
                console.print(escape(line))

    return RichView()


def register(app: typer.Typer) -> None:
    app.command("train")(train)
