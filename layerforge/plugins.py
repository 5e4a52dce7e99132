"""User layer types: from a Python file (``--plugins my_layers.py`` or ``plugins:`` in the spec) or from an
installed package's ``layerforge.layers`` entry points. Either way the code calls ``@register``.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from .errors import Issue, PluginError

_LOADED: set[str] = set()
_EP_LOADED = False


def load_plugin_file(path: str | Path, where: Issue | None = None) -> None:
    """Import a Python file once so its ``@register`` calls run."""
    p = Path(path).resolve()
    key = str(p)
    if key in _LOADED:
        return
    loc = f" (from {where.where()})" if where and where.file else ""
    if not p.is_file():
        raise PluginError(f"plugin file not found: {path}{loc}", hint="give the path of a .py file that calls @register")
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
