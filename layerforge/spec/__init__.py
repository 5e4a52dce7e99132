"""Spec loading and validation: YAML with positions, --set overrides, the schema, located errors.

This package turns text into a validated :class:`Spec` and imports no torch. The one way in for the
rest of layerforge is the front door, :func:`layerforge.build.load`, which adds plugins, the graph's
shapes, the size check and the cross-section checks.
"""
from .loader import Marks, apply_overrides, load_yaml, load_yaml_text
from .schema import ModelSpec, Spec
from .validate import validate_mapping

__all__ = ["Marks", "ModelSpec", "Spec", "apply_overrides", "load_yaml", "load_yaml_text", "validate_mapping"]
