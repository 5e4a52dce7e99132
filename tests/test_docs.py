"""Docs stay true to the code: the generated layer reference is current, and docs' example files work."""
from __future__ import annotations

from layerforge.layers.reference import render_reference


def test_committed_layer_reference_is_current(root):
    committed = (root / "docs" / "layers.md").read_text(encoding="utf-8")
    assert committed == render_reference(), (
        "docs/layers.md is stale: run `python -m layerforge.layers.reference > docs/layers.md`"
    )


def test_parameter_tables_come_from_the_fields_with_readable_types():
    from layerforge.layers.reference import layer_parameters
    from layerforge.layers.registry import registry

    def param(layer: str, name: str) -> dict:
        return next(p for p in layer_parameters(registry()[layer]) if p["name"] == name)

    assert param("multi_head_attention", "num_heads")["required"]  # one source: no docstring list to drift
    assert param("sparse_attention", "num_heads")["default"] == 1
    assert param("conv2d", "kernel_size")["type"] == "int or [int, int]"
    assert param("dense", "units")["type"] == "int > 0"
    assert param("self_attention", "dropout")["type"] == "float ≥ 0, < 1"
    assert param("self_attention", "units")["type"] == "int > 0 or null"
    assert param("positional_encoding", "kind")["type"] == "'sinusoidal' | 'learned'"
