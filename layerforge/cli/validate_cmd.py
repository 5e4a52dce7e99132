"""`layerforge validate`: schema, references and shapes, without allocating weights."""
from __future__ import annotations

import typer

from .options import ConfigArg, JsonOpt, PluginsOpt, SetOpt


def validate(config: ConfigArg, set_: SetOpt = None, plugins: PluginsOpt = None, json_: JsonOpt = False) -> None:
    """Check a spec: YAML, schema, layer parameters, references, cycles and shapes. Exit 0 if valid, 2 if not."""
    from ..spec import load_spec
    from .render import console, print_json

    spec, graph = load_spec(config, set_ or [], plugins or [])
    outs = ", ".join(f"{o} {tuple(graph.shape_of(o))}" for o in graph.outputs)
    if json_:
        print_json({"valid": True, "file": str(config), "layers": len(graph.nodes), "outputs": graph.outputs})
    else:
        console.print(f"[green]✓[/] {config}: valid — {len(graph.nodes)} layers, output {outs}")


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
