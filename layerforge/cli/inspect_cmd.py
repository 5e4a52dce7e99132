"""`layerforge inspect`: a model summary (Keras' model.summary(), torchinfo)."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from .options import PluginsOpt, SetOpt

SpecOrRunArg = Annotated[Path, typer.Argument(help="A layerforge spec (YAML), or a run directory (its spec; with "
                                              "--data, its trained weights).", show_default=False)]


class Format(str, Enum):
    table = "table"
    json = "json"
    tree = "tree"


def inspect(
    config: SpecOrRunArg,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Batch size for shapes, FLOPs and activation memory.")] = 1,
    format: Annotated[Format, typer.Option("--format", "-f", help="table, json (stable keys, see docs/inspect.md) or tree.")] = Format.table,
    data: Annotated[bool, typer.Option("--data", help="Spiking models: measure firing rates, SOPs and energy on "
                                       "the spec's data (validation split).")] = False,
    samples: Annotated[int, typer.Option("--samples", min=1, help="With --data: how many samples to measure.")] = 256,
    set_: SetOpt = None,
    plugins: PluginsOpt = None,
) -> None:
    """Summarise a model: each layer's output shape, parameters and forward FLOPs, with totals and memory."""
    from ..analysis.summary import summarize
    from ..spec import load_spec
    from .render import print_json

    if config.is_dir():  # a run directory: its saved spec
        from ..engine.api import open_run_spec
        from ..engine.rundir import RunDir

        spec, graph, _ = open_run_spec(RunDir.open(config), set_ or [], plugins or [])
    else:
        spec, graph = load_spec(config, set_ or [], plugins or [])
    summary = summarize(spec, graph, batch_size)
    spikes = _spikes(config, spec, graph, data, samples)  # spiking models only
    if format is Format.json:
        print_json({**summary.to_dict(), **({"spiking": spikes} if spikes else {})})
        return
    if format is Format.tree:
        _tree(summary, graph)
    else:
        _table(summary, graph)
    from .render import console

    if spikes:
        from .spiking_view import render_spiking

        render_spiking(spikes, console)
    elif data:
        console.print("[yellow]note[/]: --data measures spiking layers (firing rates, SOPs, energy); this model has none")


def _spikes(config: Path, spec, graph, data: bool, samples: int) -> dict | None:
    from ..analysis.spiking import is_spiking, spike_report

    if not is_spiking(graph):
        return None
    return spike_report(config if config.is_dir() else (spec, graph), measure_data=data, samples=samples).to_dict()


def _table(s, graph) -> None:
    from rich.table import Table

    from ..analysis.summary import human_count
    from ..spec.validate import human_bytes
    from .render import console

    multi = any(len(r.inputs) > 1 for r in s.layers) or len(s.input_shape) > 1 or not _is_chain(s)
    t = Table(title=f"Model: {s.name}  (batch {s.batch_size})", title_justify="left", header_style="bold")
    t.add_column("Layer (type)")
    if multi:
        t.add_column("Inputs")
    t.add_column("Output shape")
    steps = any(r.steps > 1 for r in s.layers)  # spiking: T time steps folded into the batch axis
    if steps:
        t.add_column("T", justify="right")
    t.add_column("Params", justify="right")
    t.add_column("FLOPs", justify="right")
    for name, shape in s.input_shape.items():
        row = [f"{name} (input)"] + ([""] if multi else []) + [str([s.batch_size, *shape])] + (["1"] if steps else []) + ["0", "0"]
        t.add_row(*row)
    for r in s.layers:
        params = f"{r.params:,}" + ("" if r.params == r.trainable_params else f" ({r.params - r.trainable_params:,} frozen)")
        flops = "uncounted" if r.flops is None else human_count(r.flops)
        row = ([f"{r.name} ({r.type})"] + ([", ".join(r.inputs)] if multi else []) + [str(r.output_shape)]
               + ([str(r.steps)] if steps else []) + [params, flops])
        t.add_row(*row)
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
