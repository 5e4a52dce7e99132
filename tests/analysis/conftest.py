"""Shared pieces of the profile tests: small specs written to tmp_path, quick settings, a plugin layer."""
from __future__ import annotations

from typing import Iterator

import pytest

from layerforge.layers.registry import LayerSpec, Shape, register

# Every test profiles on the CPU, one thread, a few calls per measurement (figures are not asserted).
FAST = {"device": "cpu", "threads": 1, "dtype": "fp32", "compile": False}

MLP = """
name: mlp
model:
  input_shape: [12]
  layers:
    - {type: dense, units: 16, activation: relu}
    - {type: dense, units: 4}
profile:
  batch_sizes: [2, 8]
"""

BN = """
name: with_bn
model:
  input_shape: [12]
  layers:
    - {type: dense, units: 16}
    - {type: batchnorm}
    - {type: dense, units: 4}
"""


class Uncounted(LayerSpec):
    """Test layer: a square matrix layer whose FLOPs layerforge is not told (flops() returns None)."""

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        return in_shapes[0]

    def build(self, in_shapes: list[Shape]):
        from torch import nn

        return nn.Linear(in_shapes[0][-1], in_shapes[0][-1])


@pytest.fixture
def uncounted_layer() -> Iterator[str]:
    """Registers the type ``test_uncounted`` for one test, after collection, so the registry-wide contract
    tests never see it (tests/conftest.py restores the registry after each test)."""
    register("test_uncounted", family="test")(Uncounted)
    yield "test_uncounted"
