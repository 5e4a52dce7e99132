"""`layerforge layers [NAME]`: the registry, one line per type, or one type's documentation page."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from .options import JsonOpt, PluginsOpt


def layers(
    name: Annotated[Optional[str], typer.Argument(help="A layer type to show in full.", show_default=False)] = None,
    plugins: PluginsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """List every registered layer type, or show one type's documentation (formula, parameters, shapes)."""
    from ..errors import UsageError
    from ..layers.reference import doc_page, layer_parameters
    from ..layers.registry import registry
    from ..plugins import load_entry_points, load_plugin_file
    from ..text import suggest
    from .render import console, print_json, simple_table

    load_entry_points()
    for p in plugins or []:
        load_plugin_file(p)
    reg = registry()
    if name is None:
        if json_:
            print_json([{"type": k, "family": c.family, "summary": c.summary} for k, c in reg.items()])
            return
        rows = [[k, c.family, c.summary] for k, c in sorted(reg.items(), key=lambda kv: (kv[1].family, kv[0]))]
        console.print(simple_table(f"{len(reg)} layer types (layerforge layers NAME for details)", ["type", "family", "summary"], rows))
        return
    if name not in reg:
        raise UsageError(f"unknown layer type '{name}'", hint=suggest(name, reg) or "run 'layerforge layers' for the list")
    cls = reg[name]
    if json_:
        print_json({"type": name, "family": cls.family, "summary": cls.summary, "doc": cls.doc(),
                    "parameters": layer_parameters(cls), "example": cls.example})
        return
    from rich.markdown import Markdown

    console.print(Markdown(doc_page(name, cls)))


def register(app: typer.Typer) -> None:
    app.command("layers")(layers)
