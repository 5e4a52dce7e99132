"""The ``layerforge`` command. Commands live one per module; this file wires them and maps errors.

Importing this module must not import torch (``layerforge --help`` stays fast): command modules import
the library inside their functions.
"""
from __future__ import annotations

import os
import signal
import sys
import warnings
from typing import Annotated, Optional

import typer

from . import (evaluate_cmd, export_cmd, generate_cmd, inspect_cmd, layers_cmd, predict_cmd, profile_cmd, runs_cmd,
               schema_cmd, search_cmd,
               train_cmd, validate_cmd)

app = typer.Typer(
    name="layerforge",
    help="Try a neural-network architecture from a YAML spec: validate, inspect, train, evaluate, search, profile, "
         "export.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

DEBUG_ENV = "LAYERFORGE_DEBUG"


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"layerforge {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help=f"Show the full traceback on errors (anywhere on the "
                                        f"command line; or set {DEBUG_ENV}=1).")] = False,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    """(``--debug`` is taken out of the arguments by :func:`main`, so it works after a subcommand too.)"""


# Order here is the order in --help.
for module in (train_cmd, evaluate_cmd, predict_cmd, generate_cmd, export_cmd, runs_cmd, search_cmd, profile_cmd,
               inspect_cmd, validate_cmd,
               layers_cmd, schema_cmd):
    module.register(app)


def _hide_flag_types() -> None:
    """Typer's help shows a type after flags (``--quiet <bool>``), which reads as if a value were needed;
    show nothing there, as click does."""
    from typer import core

    shown = core.TyperOption.display_type_rich

    def display_type_rich(self: core.TyperOption, ctx: object) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    core.TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_hide_flag_types()


def split_debug(argv: list[str]) -> tuple[list[str], bool]:
    """Take ``--debug`` out of the arguments wherever it stands (before a ``--``); also ``LAYERFORGE_DEBUG``."""
    stop = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:stop]
    rest = [a for i, a in enumerate(argv) if i >= stop or a != "--debug"]
    env = os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")
    return rest, debug or env


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; typed errors become a short message and exit code 2, warnings one line each."""
    from ..errors import LayerforgeError, LayerforgeWarning
    from .render import show_warning

    args, debug = split_debug(list(argv) if argv is not None else sys.argv[1:])
    try:
        with warnings.catch_warnings():  # restores the warning filters and printer afterwards
            warnings.simplefilter("always", LayerforgeWarning)
            warnings.showwarning = show_warning(warnings.showwarning)
            app(args=args, standalone_mode=True, prog_name="layerforge")
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
    finally:
        if argv is None:  # the process is leaving: one more Ctrl-C must not print a traceback on the way out
            signal.signal(signal.SIGINT, signal.SIG_IGN)


if __name__ == "__main__":  # pragma: no cover
    main()
