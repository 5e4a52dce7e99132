"""User layer types: from a Python file (``--plugins my_layers.py`` or ``plugins:`` in the spec) or from an
installed package's ``layerforge.layers`` entry points. Either way the code calls ``@register``.

A file's content is what matters for a result, so each loaded file is identified by its sha256
(:class:`PluginFile`): a run directory records it, and reopening the run compares it before importing (see
:func:`layerforge.build.load_plugins`): a changed file is not imported unless the user trusts it.
"""
from __future__ import annotations

import hashlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import Issue, PluginError
from .files import read_bytes

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


MAX_PLUGIN_BYTES = 16 << 20


def sha256_of(path: Path) -> str:
    return hashlib.sha256(read_bytes(path, MAX_PLUGIN_BYTES)).hexdigest()


def load_plugin_file(path: str | Path, where: Issue | None = None, sha256: str | None = None) -> PluginFile:
    """Import a Python file once (its ``@register`` calls run); returns the file and its content hash. The
    bytes that are hashed are the bytes that run; with ``sha256`` given, they must have that hash (a file
    changed between a check and the import is refused)."""
    p = Path(path).resolve()
    key = str(p)
    loc = f" (from {where.where()})" if where and where.file else ""
    try:
        data = read_bytes(p, MAX_PLUGIN_BYTES)
    except FileNotFoundError:
        raise PluginError(f"plugin file not found: {path}{loc}", hint="give the path of a .py file that calls @register") from None
    except OSError as e:
        raise PluginError(f"cannot read plugin {path}{loc}: {e}", hint="give the path of a .py file that calls @register") from None
    found = PluginFile(p, hashlib.sha256(data).hexdigest())
    if sha256 is not None and found.sha256 != sha256:
        raise PluginError(f"plugin {path} changed while it was being loaded{loc}", hint="try again")
    if key in _LOADED:
        return found
    name = f"layerforge_plugin_{abs(hash(key))}"
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None:
        raise PluginError(f"cannot import plugin {path}{loc}", hint="it must be a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        exec(compile(data, str(p), "exec"), module.__dict__)  # noqa: S102 - the user's plugin, checked above
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
