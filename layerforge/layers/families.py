"""Imports every built-in layer family so their @register decorators run."""
from . import dense  # noqa: F401
