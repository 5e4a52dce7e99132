"""Training that cannot go on stops with a typed, located error: a NaN loss, a corrupted checkpoint,
an output that cannot meet the targets, a metric or monitor that does not exist, fp16 without a GPU."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import layerforge as lf
from layerforge.errors import CheckpointError, DataError, SpecError, TrainingError, UsageError

from tests.engine.engine_helpers import class_bundle, mlp_spec, regression_bundle


def exploding_spec() -> dict:
    """Epoch 1 trains normally; from epoch 2 the rate is multiplied by 1e30, so the loss overflows."""
    return mlp_spec(epochs=4, optimizer={"name": "sgd", "lr": 0.1},
                    schedule={"name": "step", "step_size": 1, "gamma": 1e30})


def test_nan_loss_stops_naming_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path):
    import torch
    from safetensors.torch import load_file

    out = tmp_path / "run"
    with pytest.raises(TrainingError) as e:
        lf.train(exploding_spec(), data=class_bundle(), out=out)
    msg = e.value.message
    assert "at epoch 2, step" in msg and "global step" in msg
    assert e.value.hint and "lr" in e.value.hint
    manifest = json.loads((out / "checkpoints" / "last" / "manifest.json").read_text())
    assert manifest["epoch"] == 1
    from layerforge.engine.checkpoint import verify

    verify(out / "checkpoints" / "last")
    w = load_file(str(out / "checkpoints" / "last" / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in w.values())
    final = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert final["final"] and final["status"] == "failed" and "epoch 2" in final["message"]


def test_nan_step_number_is_the_first_bad_step(tmp_path):
    """Step numbers are 1-based within the epoch; the reported step's loss is the first non-finite one."""
    from layerforge.engine.losses import check_finite_or_raise

    import torch

    losses = torch.tensor([0.5, 0.4, float("inf"), float("nan")])
    with pytest.raises(TrainingError, match=r"became inf at epoch 3, step 13 of 20 \(global step 53\)"):
        check_finite_or_raise(losses, epoch=3, first_step=10, steps_per_epoch=20)


@pytest.fixture
def finished_run(tmp_path) -> Path:
    out = tmp_path / "run"
    lf.train(mlp_spec(epochs=2), data=class_bundle(), out=out)
    return out


@pytest.mark.parametrize("name", ["model.safetensors", "state.pt"])
def test_corrupted_checkpoint_file_is_detected_and_named(finished_run, name):
    f = finished_run / "checkpoints" / "last" / name
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as e:
        lf.train(resume=finished_run, overrides=["train.epochs=3"], data=class_bundle())
    assert str(f) in e.value.message and "corrupted" in e.value.message


def test_missing_manifest_is_reported_as_incomplete(finished_run):
    (finished_run / "checkpoints" / "best" / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="incomplete: manifest.json is missing"):
        from layerforge.engine.checkpoint import verify

        verify(finished_run / "checkpoints" / "best")


def test_resume_of_a_folder_that_is_not_a_run_says_so(tmp_path):
    with pytest.raises(CheckpointError, match="not a run directory"):
        lf.train(resume=tmp_path)


def test_output_units_must_match_the_number_of_classes():
    spec = mlp_spec()
    spec["model"]["layers"][-1]["units"] = 5
    with pytest.raises(DataError, match="5 logits, but the data has 3 classes") as e:
        lf.train(spec, data=class_bundle(), save=False)
    assert "units to 3" in e.value.hint


def test_class_metric_on_regression_targets_is_a_located_spec_error():
    spec = mlp_spec(metrics=["mae", "accuracy"])
    spec["model"]["layers"][-1]["units"] = 1
    spec["model"]["input_shape"] = [5]
    with pytest.raises(SpecError) as e:
        lf.train(spec, data=regression_bundle(), save=False)
    (issue,) = e.value.issues
    assert issue.path == ("train", "metrics", 1) and "needs class labels" in issue.message


def test_unknown_monitor_suggests_the_close_name():
    with pytest.raises(SpecError) as e:
        lf.train(mlp_spec(early_stopping={"monitor": "val_acuracy", "patience": 2}), data=class_bundle(), save=False)
    assert "val_accuracy" in (e.value.issues[0].hint or "")


def test_monitoring_val_metrics_without_a_val_split_explains(tmp_path):
    with pytest.raises(SpecError) as e:
        lf.train(mlp_spec(early_stopping={"monitor": "val_loss"}), data=class_bundle(val=0), save=False)
    assert "no validation split" in e.value.issues[0].hint


def test_fp16_on_cpu_is_a_clear_error():
    with pytest.raises(UsageError, match="fp16 needs a CUDA GPU") as e:
        lf.train(mlp_spec(precision="fp16"), data=class_bundle(), save=False)
    assert "bf16" in e.value.hint


def test_cuda_device_without_gpu_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(UsageError, match="no CUDA GPU"):
        lf.train(mlp_spec(device="cuda:0"), data=class_bundle(), save=False)


@pytest.mark.parametrize("key,value,expect", [
    ("optimizer", {"name": "adamm"}, "did you mean 'adam'"),
    ("loss", "crossentropyy", "did you mean 'cross_entropy'"),
    ("metrics", ["acuracy"], "did you mean 'accuracy'"),
    ("schedule", {"name": "cosin"}, "did you mean 'cosine'"),
    ("precision", "fp8", "unknown precision 'fp8'"),
    ("device", "gpu", "unknown device 'gpu'"),
    ("optimizer", {"name": "adam", "nesterov": True}, "nesterov needs name: sgd"),
])
def test_bad_train_values_are_located_spec_errors_with_hints(key, value, expect):
    spec = mlp_spec()
    spec["train"][key] = value
    with pytest.raises(SpecError) as e:
        lf.validate(spec)
    text = str(e.value)
    assert expect in text and "train." + key in text


def test_unknown_train_key_suggests_the_close_one(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("model:\n  input_shape: [4]\n  layers: [{type: dense, units: 2}]\ntrain:\n  epoch: 3\n")
    with pytest.raises(SpecError) as e:
        lf.load_spec(p)
    (issue,) = e.value.issues
    assert issue.line == 5 and "epochs" in issue.hint
