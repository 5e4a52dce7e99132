"""`layerforge evaluate`: a trained run's metrics on its test/val split or a labelled file, with the
confusion matrix (table + PNG) for classification."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import JsonOpt, PluginsOpt, TrustPluginsOpt


class SplitName(str, Enum):
    test = "test"
    val = "val"


class Which(str, Enum):
    best = "best"
    last = "last"


RunArg = Annotated[Path, typer.Argument(help="A run directory made by 'layerforge train'.", show_default=False)]


def evaluate(
    run_dir: RunArg,
    split: Annotated[SplitName, typer.Option("--split", help="Which split of the run's data to evaluate.")] = SplitName.test,
    data: Annotated[Optional[Path], typer.Option("--data", help="Evaluate on this labelled file instead "
                                                 "(same format and columns as the training data).",
                                                 show_default=False)] = None,
    checkpoint: Annotated[Which, typer.Option("--checkpoint", help="best (falls back to last) or last.")] = Which.best,
    plugins: PluginsOpt = None,
    json_: JsonOpt = False,
    trust_plugins: TrustPluginsOpt = False,
) -> None:
    """Evaluate a trained run: metrics table, and for classification a confusion matrix (table and PNG)."""
    from .. import evaluate as lf_evaluate
    from .render import print_json

    result = lf_evaluate(run_dir, split=split.value, data=data, checkpoint=checkpoint.value, plugins=plugins or [],
                             trust_plugins=trust_plugins)
    if json_:
        print_json(result.to_dict())
        return
    _show(result)


def _show(result) -> None:
    from rich.markup import escape
    from rich.table import Table

    from .render import console, simple_table

    epoch = f", epoch {result.epoch}" if result.epoch is not None else ""
    title = f"{result.split}: {result.samples:,} samples ({result.checkpoint} checkpoint{epoch})"
    rows = [[k, f"{v:.6g}"] for k, v in result.metrics.items()]
    console.print(f"[bold]{escape(title)}[/]")
    console.print(simple_table(None, ["metric", "value"], rows, right={1}))
    cm = result.confusion
    if cm is not None:
        c = len(cm)
        names = result.class_names if result.class_names and len(result.class_names) == c else [str(i) for i in range(c)]
        if c <= 30:
            console.print("[bold]confusion matrix[/] (rows: true class, columns: predicted)")
            t = Table(header_style="bold", show_lines=False)
            t.add_column("true \\ pred")
            for n in names:
                t.add_column(escape(str(n))[:10], justify="right")
            t.add_column("recall", justify="right")
            for i, row in enumerate(cm):
                total = sum(row)
                cells = [f"[bold green]{v}[/]" if j == i else (f"[red]{v}[/]" if v else "[dim]0[/]") for j, v in enumerate(row)]
                t.add_row(escape(str(names[i])), *cells, f"{row[i] / total:.3f}" if total else "-")
            console.print(t)
        else:
            console.print(f"confusion matrix: {c} classes (too many for a table; see the PNG)")
    if result.plot:
        console.print(f"confusion matrix plot: {result.plot}")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
