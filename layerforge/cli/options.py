"""Options shared by several commands (declared once, reused as Annotated types)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

ConfigArg = Annotated[Path, typer.Argument(help="A layerforge spec (YAML).", show_default=False)]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", metavar="KEY=VALUE", help="Override a spec value before validation, e.g. --set "
                 "train.epochs=5 --set model.layers.conv1.filters=16 (layers by name or index; repeatable; values "
                 "are YAML).", show_default=False),
]
PluginsOpt = Annotated[
    Optional[list[str]],
    typer.Option("--plugins", metavar="FILE", help="A Python file that registers extra layer types (repeatable).",
                 show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]
TrustPluginsOpt = Annotated[bool, typer.Option(
    "--trust-plugins", help="Import a spec's plugin files even when their recorded sha256 no longer matches (or a "
    "run's spec.yaml does not pin one); without it they are refused.")]
