"""Mixed precision and devices: bf16 autocast on CPU; fp16 with a gradient scaler and bf16 on CUDA
(the CUDA tests are marked `cuda` and skipped on machines without a GPU)."""
from __future__ import annotations

import math

import pytest

import layerforge as lf
from tests.engine.engine_helpers import class_bundle, mlp_spec


class OutputDtype:
    """Records the dtype of the model's last layer output during training."""

    def __init__(self) -> None:
        self.dtypes: set = set()

    def hook(self, model) -> None:
        last = list(model.layers.values())[-1]
        last.register_forward_hook(lambda m, i, o: self.dtypes.add(o.dtype) if m.training else None)


def _train_recording(spec: dict, bundle, **kw):
    """Train while recording the output dtype (the hook goes on the model the trainer builds)."""
    from layerforge import build as door

    rec = OutputDtype()
    module = door.module

    def build_and_hook(spec_obj, graph, seed=None):
        model = module(spec_obj, graph, seed)
        rec.hook(model)
        return model

    door.module = build_and_hook
    try:
        result = lf.train(spec, data=bundle, save=False, **kw)
    finally:
        door.module = module
    return result, rec.dtypes


def test_bf16_autocast_trains_on_cpu():
    import torch

    result, dtypes = _train_recording(mlp_spec(epochs=5, precision="bf16", optimizer={"name": "adam", "lr": 0.01}),
                                      class_bundle())
    assert dtypes == {torch.bfloat16}
    losses = [r["loss"] for r in result.history]
    assert all(math.isfinite(l) for l in losses) and losses[-1] < losses[0]
    assert all(p.dtype == torch.float32 for p in result.model.parameters())  # master weights stay fp32


def test_fp32_runs_without_autocast():
    import torch

    _, dtypes = _train_recording(mlp_spec(epochs=1), class_bundle())
    assert dtypes == {torch.float32}


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["fp16", "bf16", "fp32"])
def test_cuda_training_in_each_precision(precision, tmp_path):
    import torch

    result = lf.train(mlp_spec(epochs=3, device="cuda", precision=precision, grad_clip=1.0), data=class_bundle(),
                      out=tmp_path / "run")
    assert result.status == "completed"
    assert all(math.isfinite(r["loss"]) for r in result.history)
    assert next(result.model.parameters()).device.type == "cuda"
    # a checkpoint written on the GPU evaluates on the CPU
    from layerforge.engine.checkpoint import load_weights

    model = lf.build_model(mlp_spec())
    load_weights(tmp_path / "run" / "checkpoints" / "last", model)
    del torch


@pytest.mark.cuda
def test_cuda_fp16_resume_restores_the_grad_scaler(tmp_path):
    from tests.engine.test_resume import StopAt

    spec = mlp_spec(epochs=3, device="cuda:0", precision="fp16")
    out = tmp_path / "run"
    first = lf.train(spec, data=class_bundle(), out=out, callbacks=[StopAt(1)])
    assert first.status == "interrupted"
    import torch

    state = torch.load(out / "checkpoints" / "last" / "state.pt", weights_only=True)
    assert state["scaler"] is not None and state["scaler"]["scale"] > 0
    assert lf.train(resume=out, data=class_bundle()).epochs_run == 3


@pytest.mark.cuda
def test_deterministic_cuda_runs_repeat(tmp_path):
    import torch

    spec = mlp_spec(epochs=2, device="cuda", deterministic=True)
    a = lf.train(spec, data=class_bundle(), save=False).model
    b = lf.train(spec, data=class_bundle(), save=False).model
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
