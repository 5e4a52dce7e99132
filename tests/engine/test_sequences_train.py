"""The variable-length example (lengths 5–50, padded per batch, masked GRU) learns its task."""
from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT
from tests.helpers import run_cli


@pytest.mark.slow
def test_masked_gru_example_reaches_95_percent_in_5_epochs(tmp_path, capsys):
    r = run_cli(capsys, "train", str(ROOT / "configs" / "gru_majority_masked.yaml"), "--out", str(tmp_path / "run"),
                "--json", "--set", "train.plots=false", "--set", "train.epochs=5")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    assert result["best"]["val_accuracy"] >= 0.95
