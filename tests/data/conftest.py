"""Helpers for the data tests: build a validated spec around a ``data:`` block, and load its data the way
the engine does (the model's facts come from the front door)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import layerforge as lf
from layerforge import data


def make_spec(data: dict[str, Any], input_shape: Any, layers: list[dict] | None = None, seed: int = 0,
              units: int | None = None):
    """A validated Spec; by default one dense layer with ``units`` outputs."""
    if layers is None:
        layers = [{"type": "dense", "units": units or 3}]
    spec, _ = lf.spec_from_dict({"seed": seed, "model": {"input_shape": input_shape, "layers": layers}, "data": data})
    return spec


def facts_of(spec) -> data.ModelFacts:
    """What the spec's model needs of the data (the engine's call: build.data_facts of its graph)."""
    from layerforge.build import data_facts, load

    return data_facts(load(spec)[1])


def load_data(spec, base_dir: Path | None = None) -> data.DataBundle:
    return data.load_data(spec, facts_of(spec), base_dir)


@pytest.fixture
def spec_of():
    return make_spec
