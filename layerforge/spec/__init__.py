"""Spec loading and validation: YAML with positions, --set overrides, the schema, located errors."""
from .loader import apply_overrides, load_yaml, load_yaml_text
from .schema import ModelSpec, Spec
from .validate import load_spec, spec_from_dict, validate_data

__all__ = ["ModelSpec", "Spec", "apply_overrides", "load_spec", "load_yaml", "load_yaml_text", "spec_from_dict", "validate_data"]
