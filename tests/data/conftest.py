"""Helpers for the data tests: build a validated spec around a ``data:`` block."""
from __future__ import annotations

from typing import Any

import pytest

import layerforge as lf


def make_spec(data: dict[str, Any], input_shape: Any, layers: list[dict] | None = None, seed: int = 0,
              units: int | None = None):
    """A validated Spec; by default one dense layer with ``units`` outputs."""
    if layers is None:
        layers = [{"type": "dense", "units": units or 3}]
    spec, _ = lf.spec_from_dict({"seed": seed, "model": {"input_shape": input_shape, "layers": layers}, "data": data})
    return spec


@pytest.fixture
def spec_of():
    return make_spec
