"""The masked Transformer example (embedding with mask_zero → two transformer_blocks → sequence_pool → dense,
lengths 5–50 padded per batch) learns its task on a few hundred ragged samples."""
from __future__ import annotations

import json

from tests.conftest import ROOT
from tests.helpers import run_cli


def test_masked_transformer_example_learns_the_ragged_majority_task_in_4_short_epochs(tmp_path, capsys):
    r = run_cli(capsys, "train", str(ROOT / "configs" / "transformer_majority_masked.yaml"), "--out", str(tmp_path / "run"),
                "--json", "--set", "train.plots=false", "--set", "train.epochs=4", "--set", "data.num_samples=320")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    assert result["best"]["val_accuracy"] >= 0.9  # chance is about 0.5
