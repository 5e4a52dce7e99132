"""User layer types: from a Python file (``--plugins my_layers.py`` or ``plugins:`` in the spec) or from an
installed package's ``layerforge.layers`` entry points. Either way the code calls ``@register``.

A file's content is what matters for a result, so each loaded file is identified by its sha256
(:class:`PluginFile`): a run directory records it, and reopening the run compares it (see
:func:`changed_since`).
"""
from __future__ import annotations

import hashlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import Issue, PluginError

_LOADED: set[str] = set()
_EP_LOADED = False


@dataclass(frozen=True)
class PluginFile:
    """A plugin file as loaded: its absolute path and the sha256 of its content."""

    path: Path
    sha256: str

    def to_entry(self) -> dict[str, str]:
        """The ``plugins:`` entry that pins this file (what a run directory's spec.yaml records)."""
        return {"path": str(self.path), "sha256": self.sha256}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def changed_since(recorded: str | None, current: PluginFile) -> bool:
    """True when a recorded sha256 no longer matches the file. (Today a warning; a stricter mode can refuse
    here without changing the record.)"""
    return recorded is not None and recorded != current.sha256


def load_plugin_file(path: str | Path, where: Issue | None = None) -> PluginFile:
    """Import a Python file once (its ``@register`` calls run); returns the file and its content hash."""
    p = Path(path).resolve()
    key = str(p)
    loc = f" (from {where.where()})" if where and where.file else ""
    if not p.is_file():
        raise PluginError(f"plugin file not found: {path}{loc}", hint="give the path of a .py file that calls @register")
    found = PluginFile(p, sha256_of(p))
    if key in _LOADED:
        return found
    name = f"layerforge_plugin_{abs(hash(key))}"
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise PluginError(f"cannot import plugin {path}{loc}", hint="it must be a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except PluginError:
        raise
    except Exception as e:  # a user's file failed: report it as theirs, not ours
        del sys.modules[name]
        raise PluginError(f"plugin {path} failed to import: {type(e).__name__}: {e}",
                          hint="run it with python to see the full error") from e
    _LOADED.add(key)
    return found


def load_entry_points() -> None:
    """Load every ``layerforge.layers`` entry point once."""
    global _EP_LOADED
    if _EP_LOADED:
        return
    _EP_LOADED = True
    from importlib.metadata import entry_points

    for ep in entry_points(group="layerforge.layers"):
        try:
            ep.load()
        except PluginError:
            raise
        except Exception as e:
            raise PluginError(f"entry point '{ep.name}' ({ep.value}) failed to load: {type(e).__name__}: {e}") from e
