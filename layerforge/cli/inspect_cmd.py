"""`layerforge inspect`: a model summary (Keras' model.summary(), torchinfo)."""
from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from .options import ConfigArg, PluginsOpt, SetOpt


class Format(str, Enum):
    table = "table"
    json = "json"
    tree = "tree"


def inspect(
    config: ConfigArg,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Batch size for shapes, FLOPs and activation memory.")] = 1,
    format: Annotated[Format, typer.Option("--format", "-f", help="table, json (stable keys, see docs/inspect.md) or tree.")] = Format.table,
    set_: SetOpt = None,
    plugins: PluginsOpt = None,
) -> None:
    """Summarise a model: each layer's output shape, parameters and forward FLOPs, with totals and memory."""
    from ..analysis.summary import summarize
    from ..spec import load_spec
    from .render import print_json

    spec, graph = load_spec(config, set_ or [], plugins or [])
    summary = summarize(spec, graph, batch_size)
    if format is Format.json:
        print_json(summary.to_dict())
    elif format is Format.tree:
        _tree(summary, graph)
    else:
        _table(summary, graph)


def _table(s, graph) -> None:
    from rich.table import Table

    from ..analysis.summary import format_info, human_count
    from ..spec.validate import human_bytes
    from .render import console

    multi = any(len(r.inputs) > 1 for r in s.layers) or len(s.input_shape) > 1 or not _is_chain(s)
    t = Table(title=f"Model: {s.name}  (batch {s.batch_size})", title_justify="left", header_style="bold")
    t.add_column("Layer (type)")
    if multi:
        t.add_column("Inputs")
    t.add_column("Output shape")
    t.add_column("Params", justify="right")
    t.add_column("FLOPs", justify="right")
    notes = any(r.info for r in s.layers)
    if notes:
        t.add_column("Notes (per sample)")
    for name, shape in s.input_shape.items():
        row = [f"{name} (input)"] + ([""] if multi else []) + [str([s.batch_size, *shape]), "0", "0"]
        t.add_row(*row, *([""] if notes else []))
    for r in s.layers:
        params = f"{r.params:,}" + ("" if r.params == r.trainable_params else f" ({r.params - r.trainable_params:,} frozen)")
        flops = "uncounted" if r.flops is None else human_count(r.flops)
        row = [f"{r.name} ({r.type})"] + ([", ".join(r.inputs)] if multi else []) + [str(r.output_shape), params, flops]
        t.add_row(*row, *([format_info(r.info)] if notes else []))
    console.print(t)
    console.print(f"Total params: {s.total_params:,}  ({human_bytes(s.param_bytes)} with buffers, fp32)")
    console.print(f"Trainable params: {s.trainable_params:,}")
    console.print(f"Non-trainable params: {s.non_trainable_params:,}")
    console.print(f"Forward FLOPs (batch {s.batch_size}): {human_count(s.flops)} ({s.flops:,})"
                  + (f"  — uncounted layers: {', '.join(s.uncounted)}" if s.uncounted else ""))
    console.print(f"Activation memory (batch {s.batch_size}, fp32): {human_bytes(s.activation_bytes)}")


def _is_chain(s) -> bool:
    prev = next(iter(s.input_shape))
    for r in s.layers:
        if r.inputs != [prev]:
            return False
        prev = r.name
    return True


def _tree(s, graph) -> None:
    from rich.tree import Tree

    from ..analysis.summary import human_count
    from .render import console

    root = Tree(f"[bold]{s.name}[/]  {s.total_params:,} params, {human_count(s.flops)} FLOPs (batch {s.batch_size})")
    rows = {r.name: r for r in s.layers}
    children: dict[str, list[str]] = {}
    for n in graph.nodes:
        for i in n.inputs:
            children.setdefault(i, []).append(n.name)
    shown: set[str] = set()

    def add(parent, name: str) -> None:
        for c in children.get(name, []):
            r = rows[c]
            label = f"{c} ({r.type}) → {r.output_shape}  params {r.params:,}"
            if c in shown:
                parent.add(f"[dim]{label} (see above)[/]")
                continue
            shown.add(c)
            add(parent.add(label), c)

    for name, shape in s.input_shape.items():
        add(root.add(f"[cyan]{name}[/] (input) {[s.batch_size, *shape]}"), name)
    console.print(root)


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)
