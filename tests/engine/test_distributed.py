"""Data-parallel training: two gloo processes under torchrun, each taking half of every global batch,
train the same model as one process with the same global batch (up to float rounding), weight penalty
(kernel_regularizer) included."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SPEC = """\
# Run: torchrun --standalone --nproc_per_node 2 -m layerforge train spec.yaml
name: ddp
seed: 1
model:
  input_shape: [4]
  layers:
    - {type: dense, units: 16, activation: relu, kernel_regularizer: {l2: 0.001}}   # the same penalty on each rank
    - {type: dense, units: 3}
data: {dataset: iris, val: 0.25}
train:
  epochs: 3
  batch_size: 17          # odd: the ranks get 9 and 8 rows; the last batch of 10 gives 5 and 5
  device: cpu
  plots: false
  optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
  metrics: [accuracy, f1]
"""


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process_with_the_same_global_batch(tmp_path: Path):
    import torch
    from safetensors.torch import load_file

    (tmp_path / "spec.yaml").write_text(SPEC)
    one = subprocess.run([sys.executable, "-m", "layerforge", "train", "spec.yaml", "--out", "one", "--json"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "layerforge", "train", "spec.yaml", "--out", "two", "--json"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    result = json.loads(two.stdout[two.stdout.index("{"):])  # only rank 0 prints
    assert result["epochs_run"] == 3 and two.stdout.count('"status"') == 1

    wa = load_file(str(tmp_path / "one" / "checkpoints" / "last" / "model.safetensors"))
    wb = load_file(str(tmp_path / "two" / "checkpoints" / "last" / "model.safetensors"))
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-5), k
    ra = [json.loads(l) for l in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()][:-1]
    rb = [json.loads(l) for l in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()][:-1]
    for a, b in zip(ra, rb, strict=True):
        assert (a["epoch"], a["step"], a["accuracy"], a["f1"], a["val_accuracy"]) == \
               (b["epoch"], b["step"], b["accuracy"], b["f1"], b["val_accuracy"])
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["reg_loss"] == pytest.approx(b["reg_loss"], rel=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
    assert not (tmp_path / "runs").exists()  # rank 1 wrote nothing
