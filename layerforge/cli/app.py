"""The ``layerforge`` command. Commands live one per module; this file wires them and maps errors.

Importing this module must not import torch (``layerforge --help`` stays fast): command modules import
the library inside their functions.
"""
from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from . import (evaluate_cmd, generate_cmd, inspect_cmd, layers_cmd, predict_cmd, profile_cmd, runs_cmd, schema_cmd,
               train_cmd, validate_cmd)

app = typer.Typer(
    name="layerforge",
    help="Try a neural-network architecture from a YAML spec: validate, inspect, train, evaluate, profile.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

STATE = {"debug": False}


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"layerforge {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")] = False,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    STATE["debug"] = debug


# Order here is the order in --help.
for module in (train_cmd, evaluate_cmd, predict_cmd, generate_cmd, runs_cmd, profile_cmd, inspect_cmd, validate_cmd,
               layers_cmd, schema_cmd):
    module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; typed errors become a short message and exit code 2."""
    from ..errors import LayerforgeError

    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        app(args=argv, standalone_mode=True)
    except LayerforgeError as err:
        if debug:
            raise
        from .render import print_error

        print_error(err)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
