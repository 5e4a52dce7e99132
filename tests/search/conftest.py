"""Tiny search specs on iris (150 samples): a few trials of one or two epochs each."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

IRIS = """
name: iris_search
seed: 0
model:
  input_shape: [4]
  layers:
    - {type: dense, name: h1, units: 8, activation: relu}
    - {type: dropout, name: drop, rate: 0.1}
    - {type: dense, name: h2, units: 8, activation: relu}
    - {type: dense, name: out, units: 3}
data: {dataset: iris, val: 0.2}
train: {epochs: 2, batch_size: 16, optimizer: {name: adam, lr: 0.01}, device: cpu, checkpoint_every: 0}
"""


def iris_search(tmp_path: Path, search: str, name: str = "spec.yaml", epochs: int | None = None) -> Path:
    """An iris spec with the given ``search:`` section (YAML text, indented as a top-level section)."""
    text = IRIS if epochs is None else IRIS.replace("epochs: 2", f"epochs: {epochs}")
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip() + textwrap.dedent(search).lstrip())
    return p


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run in a temporary folder (runs/ lands there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
