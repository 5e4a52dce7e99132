"""Optional dependencies: import one, or say which extra installs it (exit code 2, no traceback).

Extras are declared in ``pyproject.toml`` (``export``: onnx, onnxscript, onnxruntime; ``logs``:
tensorboardX); ``dev`` includes them all, so the test command installs everything.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the ``extra`` to install for ``purpose``."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        missing = e.name or module
        raise MissingExtraError(
            f"{purpose} needs the optional package '{missing.split('.')[0]}', which is not installed",
            hint=f'pip install "layerforge[{extra}]"  (from a clone: pip install -e ".[{extra}]")',
        ) from None
