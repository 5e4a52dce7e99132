"""Drawing with Rich: the console, error reports, and tables shared by the commands.

Nothing else in the library draws; commands turn library results into views here (or in their own
module for views used by one command only).
"""
from __future__ import annotations

import json
import sys
from typing import Any, Callable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """JSON on stdout, nothing else (for scripts)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def print_error(err: Exception, max_issues: int = 20) -> None:
    """A short, located error report on stderr: what, where, how to fix."""
    from ..errors import LayerforgeError, SpecError, format_path

    title = getattr(err, "title", "error")
    if isinstance(err, SpecError):
        n = len(err.issues)
        err_console.print(f"[bold red]{title}[/]: {n} problem{'s' if n != 1 else ''} found")
        for issue in err.issues[:max_issues]:
            where = issue.where()
            path = f" [cyan]{escape(format_path(issue.path))}[/]" if issue.path else ""
            layer = f" [magenta]({escape(issue.layer)})[/]" if issue.layer else ""
            err_console.print(f"  [bold]{escape(where)}[/]{path}{layer}: {escape(issue.message)}")
            if issue.hint:
                err_console.print(f"      [green]hint:[/] {escape(issue.hint)}")
        if n > max_issues:
            err_console.print(f"  ... and {n - max_issues} more")
        return
    msg = err.message if isinstance(err, LayerforgeError) else str(err)
    err_console.print(f"[bold red]{title}[/]: {escape(msg)}")
    hint = getattr(err, "hint", None)
    if hint:
        err_console.print(f"  [green]hint:[/] {escape(hint)}")


def print_warning(w: Warning) -> None:
    """One located warning line on stderr, with its fix."""
    from ..errors import SpecWarning, format_path

    if isinstance(w, SpecWarning):
        i = w.issue
        path = f" [cyan]{escape(format_path(i.path))}[/]" if i.path else ""
        err_console.print(f"[bold yellow]warning[/]: [bold]{escape(i.where())}[/]{path}: {escape(i.message)}")
        if i.hint:
            err_console.print(f"      [green]hint:[/] {escape(i.hint)}")
    else:
        err_console.print(f"[bold yellow]warning[/]: {escape(str(w))}")


def show_warning(fallback: Callable[..., None]) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints layerforge's warnings with :func:`print_warning` and passes
    any other warning to ``fallback``."""
    from ..errors import LayerforgeWarning

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: str | None = None) -> None:
        if isinstance(message, LayerforgeWarning):
            print_warning(message)
        else:
            fallback(message, category, filename, lineno, file, line)

    return show


def wide_console() -> Console:
    """A console for output that is not a terminal (a pipe, a file): no width to fit, so tables keep their
    natural width instead of being cut at 80 columns."""
    return Console(highlight=False, width=100_000, soft_wrap=True)


def simple_table(title: str | None, columns: list[str], rows: list[list[Any]], right: set[int] | None = None,
                 no_wrap: set[int] | None = None) -> Table:
    """A plain table; columns in ``no_wrap`` are never wrapped or cut (ids: other columns give way)."""
    table = Table(title=title, title_justify="left", header_style="bold")
    for i, c in enumerate(columns):
        keep = bool(no_wrap and i in no_wrap)
        width = max([len(str(c)), *(len(str(r[i])) for r in rows)]) if keep else None
        table.add_column(c, justify="right" if right and i in right else "left", no_wrap=keep, min_width=width)
    for r in rows:
        table.add_row(*[escape(str(v)) for v in r])
    return table
