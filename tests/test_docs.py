"""Docs stay true to the code: the generated layer reference is current, and docs' example files work."""
from __future__ import annotations

from layerforge.layers.reference import render_reference


def test_committed_layer_reference_is_current(root):
    committed = (root / "docs" / "layers.md").read_text(encoding="utf-8")
    assert committed == render_reference(), (
        "docs/layers.md is stale: run `python -m layerforge.layers.reference > docs/layers.md`"
    )
