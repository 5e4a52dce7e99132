"""Typed errors. The library raises these; the CLI maps each to a short message and exit code 2.

A :class:`SpecError` carries every independent problem found in a spec, each located by file, line,
column and key path, so a user fixes them all in one pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

PathPart = str | int
KeyPath = tuple[PathPart, ...]


def format_path(path: Sequence[PathPart]) -> str:
    """``("model", "layers", 3, "units")`` → ``model.layers[3].units``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


@dataclass
class Issue:
    """One located problem in a spec."""

    message: str
    path: KeyPath = ()
    hint: str | None = None
    file: str | None = None
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    layer: str | None = None  # "conv2d 'conv1'" when the problem is inside a layer
    origin: str | None = None  # e.g. "--set model.layers.4.units=128"

    def where(self) -> str:
        if self.origin:
            return self.origin
        if self.file is None:
            return "<spec>"
        if self.line is None:
            return self.file
        return f"{self.file}:{self.line}:{self.column or 1}"

    def to_dict(self) -> dict:
        return {
            "file": self.file, "line": self.line, "column": self.column,
            "path": format_path(self.path), "layer": self.layer,
            "message": self.message, "hint": self.hint, "origin": self.origin,
        }


def file_order(issue: Issue) -> tuple:
    """Sort key: ``--set`` items first (in the order given), then by file, line and column."""
    return (issue.origin is None, issue.file or "", issue.line or 0, issue.column or 0)


class LayerforgeError(Exception):
    """Base of every error a user can cause. ``exit_code`` is what the CLI exits with."""

    exit_code = 2
    title = "error"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class SpecError(LayerforgeError):
    """One or more problems in a spec (syntax, schema, references, shapes, size)."""

    title = "invalid spec"

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = sorted(issues, key=file_order)
        first = self.issues[0].message if self.issues else "invalid spec"
        super().__init__(first if len(self.issues) == 1 else f"{len(self.issues)} problems in the spec")

    def __str__(self) -> str:
        lines = []
        for i in self.issues:
            loc = f"{i.where()}: " + (f"{format_path(i.path)}: " if i.path else "")
            lay = f"({i.layer}) " if i.layer else ""
            lines.append(f"{loc}{lay}{i.message}" + (f"\n  hint: {i.hint}" if i.hint else ""))
        return "\n".join(lines)


class ShapeError(ValueError):
    """Raised by a layer's ``output_shape`` when its input shapes do not fit; the graph locates it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class DataError(LayerforgeError):
    """Bad or missing data: names the file and what to fix. ``path`` is the spec key the problem belongs
    to (``("data", "target")``), when there is one, so ``validate`` can point at its line."""

    title = "data error"

    def __init__(self, message: str, hint: str | None = None, path: KeyPath | None = None) -> None:
        super().__init__(message, hint)
        self.path = path


class CheckpointError(LayerforgeError):
    """A missing, corrupted or incompatible checkpoint / run directory."""

    title = "checkpoint error"


class TrainingError(LayerforgeError):
    """Training stopped for a reason the user must act on (e.g. a NaN loss)."""

    title = "training stopped"


class PluginError(LayerforgeError):
    """A plugin file or entry point could not be loaded, or registered a bad layer type."""

    title = "plugin error"


class UsageError(LayerforgeError):
    """A bad command-line argument the parser itself could not catch."""

    title = "usage error"


class ExportError(LayerforgeError):
    """A trained model could not be exported, or the exported file does not compute what the model does."""

    title = "export failed"


class MissingExtraError(LayerforgeError):
    """An optional package is not installed; the hint names the extra that installs it."""

    title = "missing package"


class LayerforgeWarning(UserWarning):
    """Something that works but is probably not what was meant. The library warns through Python's
    ``warnings`` module; the CLI prints each warning as a short located line."""


class SpecWarning(LayerforgeWarning):
    """A warning located in a spec (file:line:col), with the fix as ``issue.hint``."""

    def __init__(self, issue: Issue) -> None:
        super().__init__(issue.message)
        self.issue = issue

    def __str__(self) -> str:
        i = self.issue
        loc = f"{i.where()}: " + (f"{format_path(i.path)}: " if i.path else "")
        return f"{loc}{i.message}" + (f" (hint: {i.hint})" if i.hint else "")
