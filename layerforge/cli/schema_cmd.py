"""`layerforge schema`: the JSON Schema of the spec, for editors (yaml-language-server)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import PluginsOpt


def schema(
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
    plugins: PluginsOpt = None,
) -> None:
    """Print the JSON Schema of a layerforge spec (every registered layer type included)."""
    import json

    from ..plugins import load_entry_points, load_plugin_file
    from ..spec.jsonschema import spec_json_schema

    load_entry_points()
    for p in plugins or []:
        load_plugin_file(p)
    text = json.dumps(spec_json_schema(), indent=2) + "\n"
    if output:
        output.write_text(text)
    else:
        typer.echo(text, nl=False)


def register(app: typer.Typer) -> None:
    app.command("schema")(schema)
