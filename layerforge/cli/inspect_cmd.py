"""`layerforge inspect`: a model summary (Keras' model.summary(), torchinfo)."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import PluginsOpt, SetOpt, TrustPluginsOpt

SpecOrRunArg = Annotated[Path, typer.Argument(help="A layerforge spec (YAML), or a run directory (its spec; with "
                                              "--data, its trained weights).", show_default=False)]


class Vary(str, Enum):
    batch = "batch"
    seq_len = "seq_len"


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
    max_memory: Annotated[Optional[str], typer.Option("--max-memory", help="A memory budget (e.g. 4GiB, 512MB): "
                                                      "report the largest batch (or --vary seq_len: sequence length) "
                                                      "whose estimated training step fits.", show_default=False)] = None,
    vary: Annotated[Vary, typer.Option("--vary", help="With --max-memory: what to grow, batch or seq_len (at "
                                       "--batch-size).")] = Vary.batch,
    set_: SetOpt = None,
    plugins: PluginsOpt = None,
    trust_plugins: TrustPluginsOpt = False,
) -> None:
    """Summarise a model: each layer's output shape, parameters and forward FLOPs, with totals and memory."""
    from ..analysis.summary import summarize
    from ..build import load
    from .render import print_json

    if config.is_dir():  # a run directory: its saved spec, through the front door
        from ..engine.rundir import RunDir

        spec, graph = RunDir.open(config).load_spec(set_ or [], plugins or [], train_rules=False,
                                                    trust_plugins=trust_plugins)
    else:
        spec, graph = load(config, set_ or [], plugins or [], trust_plugins=trust_plugins)
    summary = summarize(spec, graph, batch_size)
    spikes = _spikes(config, spec, graph, data, samples, set_ or [], plugins or [], trust_plugins)  # spiking models only
    memory = _memory(config, spec, graph, batch_size, max_memory, vary.value, set_ or [], plugins or [], trust_plugins)
    if format is Format.json:
        print_json({**summary.to_dict(), "memory": memory, **({"spiking": spikes} if spikes else {})})
        return
    if format is Format.tree:
        _tree(summary, graph)
    else:
        _table(summary, graph)
    from .render import console

    print_memory(memory)
    if spikes:
        from .spiking_view import render_spiking

        render_spiking(spikes, console)
    elif data:
        console.print("[yellow]note[/]: --data measures spiking layers (firing rates, SOPs, energy); this model has none")


def _memory(config: Path, spec, graph, batch_size: int, max_memory: str | None, vary: str, sets: list[str],
            plugins: list[str], trust_plugins: bool) -> dict:
    """Estimated peaks per batch size (training step with Adam, inference; fp32, CPU kernels) and, with
    --max-memory, the largest batch or sequence length that fits."""
    from ..analysis.estimate import ESTIMATE_BATCHES, estimated_peaks, estimate_memory, largest_fitting
    from ..errors import UsageError
    from ..text import parse_bytes

    out: dict = {"method": "a training step (Adam, fp32) and an inference pass traced on fake tensors (CPU kernels)",
                 "peaks": estimated_peaks(graph, {*ESTIMATE_BATCHES, batch_size})}
    if max_memory is None:
        return out
    try:
        limit = parse_bytes(max_memory)
    except ValueError as e:
        raise UsageError(f"--max-memory: {e}", hint="e.g. --max-memory 4GiB") from None
    if vary == "batch":
        best = largest_fitting(lambda b: estimate_memory(graph, b, train=True).split.peak, limit)
    else:
        from ..analysis.sweep import sweep_overrides
        from ..build import load

        from ..errors import SpecError

        sweep_overrides("seq_len", "1", spec, graph)  # a model without a sequence input fails here, clearly
        invalid: dict[int, str] = {}

        def peak_at(t: int) -> int:
            try:
                _, g = load(config, [*sets, *sweep_overrides("seq_len", str(t), spec, graph)], plugins,
                            trust_plugins=trust_plugins)
            except SpecError as e:  # e.g. longer than a positional encoding's max_len: cannot grow further
                invalid[t] = e.issues[0].message if e.issues else str(e)
                return limit + 1
            return estimate_memory(g, batch_size, train=True).split.peak

        best = largest_fitting(peak_at, limit, upper=1 << 20)
        if best is not None and best + 1 in invalid:
            out["limited_by_spec"] = invalid[best + 1]
    out["max_memory"] = {"limit": limit, "vary": vary, "batch_size": batch_size, "largest": best,
                         "limited_by_spec": out.pop("limited_by_spec", None)}
    return out


def print_memory(memory: dict) -> None:
    """The estimated peaks as one line per mode, and the --max-memory answer."""
    from ..text import human_bytes
    from .render import console

    peaks = memory["peaks"]
    for mode, what in (("train", "training step, Adam"), ("inference", "inference")):
        console.print(f"Estimated peak memory ({what}, fp32): "
                      + " · ".join(f"batch {p['batch_size']}: {human_bytes(p[mode])}" for p in peaks))
    mm = memory.get("max_memory")
    if mm is None:
        return
    limit = human_bytes(mm["limit"])
    if mm["largest"] is None:
        console.print(f"[yellow]Within {limit}[/]: not even {'batch 1' if mm['vary'] == 'batch' else 'length 1'} "
                      "fits a training step")
    elif mm["vary"] == "batch":
        console.print(f"[bold]Within {limit}[/]: the largest batch for a training step is {mm['largest']:,}")
    else:
        console.print(f"[bold]Within {limit}[/]: the longest sequence for a training step at batch "
                      f"{mm['batch_size']} is {mm['largest']:,}"
                      + (f" (longer ones are invalid for this spec: {mm['limited_by_spec']})" if mm["limited_by_spec"]
                         else ""))


def _spikes(config: Path, spec, graph, data: bool, samples: int, sets: list[str], plugins: list[str],
            trust_plugins: bool) -> dict | None:
    """The spike report of a spiking model (a run directory: with its trained weights), else None."""
    from ..analysis.spiking import is_spiking, spike_report

    if not is_spiking(graph):
        return None
    if config.is_dir():  # reopened with its checkpoint: its spec's warnings were shown when it was loaded above
        import warnings

        from ..errors import SpecWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SpecWarning)
            return spike_report(config, measure_data=data, samples=samples, overrides=sets, plugins=plugins,
                                trust_plugins=trust_plugins).to_dict()
    return spike_report((spec, graph), measure_data=data, samples=samples).to_dict()


def _table(s, graph) -> None:
    from rich.table import Table

    from ..text import format_info, human_bytes, human_count
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
    info = any(r.info for r in s.layers)
    if info:
        t.add_column("Info")
    for name, shape in s.input_shape.items():
        row = ([f"{name} (input)"] + ([""] if multi else []) + [str([s.batch_size, *shape])] + (["1"] if steps else [])
               + ["0", "0"] + ([""] if info else []))
        t.add_row(*row)
    for r in s.layers:
        params = f"{r.params:,}" + ("" if r.params == r.trainable_params else f" ({r.params - r.trainable_params:,} frozen)")
        flops = "uncounted" if r.flops is None else human_count(r.flops)
        row = ([f"{r.name} ({r.type})"] + ([", ".join(r.inputs)] if multi else []) + [r.shape_text("\n")]
               + ([str(r.steps)] if steps else []) + [params, flops] + ([format_info(r.info)] if info else []))
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
    """The graph as a tree that stays narrow: each layer appears once, under the input that completes it (its
    last input to run); a layer that is its parent's only child continues the list at the same depth, so a
    plain chain is one flat list and indentation marks only real branches. Other inputs are named (← a, b)."""
    from rich.tree import Tree

    from ..layers.registry import split_ref
    from ..text import human_count
    from .render import console

    rows = {r.name: r for r in s.layers}
    order = {n: i for i, n in enumerate([*graph.inputs, *(n.name for n in graph.nodes)])}
    children: dict[str, list[str]] = {}
    for n in graph.nodes:  # an extra output 'enc:h' hangs under its layer 'enc'
        children.setdefault(max((split_ref(r)[0] for r in n.inputs), key=order.__getitem__), []).append(n.name)

    def label(name: str, via: str) -> str:
        r = rows[name]
        others = [i for i in graph.node(name).inputs if split_ref(i)[0] != via]
        joins = f" ← {', '.join(graph.node(name).inputs)}" if others else ""
        return f"{name} [dim]({r.type})[/]{joins} → {r.shape_text()}  {r.params:,} params"

    def add(parent, name: str) -> None:
        kids = children.get(name, [])
        while len(kids) == 1:  # a chain: continue at the same depth
            parent.add(label(kids[0], name))
            name, kids = kids[0], children.get(kids[0], [])
        for c in kids:  # a branch point: one subtree per branch
            add(parent.add(label(c, name)), c)

    root = Tree(f"[bold]{s.name}[/]  {s.total_params:,} params, {human_count(s.flops)} FLOPs (batch {s.batch_size})")
    for name, shape in s.input_shape.items():
        add(root.add(f"[cyan]{name}[/] (input) {[s.batch_size, *shape]}"), name)
    console.print(root)


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)
