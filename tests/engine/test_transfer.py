"""Transfer learning: frozen layers (trainable: false), model.init_from from a trained run, and weight
regularizers in the loss (Keras' semantics), with exact resume."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import layerforge as lf
from layerforge.engine.events import Callback
from layerforge.errors import SpecError
from tests.helpers import run_cli, write_spec

from tests.engine.engine_helpers import regression_bundle

BASE = """\
# Run: layerforge train base.yaml
name: base
seed: 3
model:
  input_shape: [4]
  layers:
    - {type: dense, name: body, units: 12, activation: relu}
    - {type: batchnorm, name: norm}
    - {type: dense, name: head, units: 3}
data: {dataset: iris, val: 0.2}
train: {epochs: 2, batch_size: 16, device: cpu, plots: false, optimizer: {name: adam, lr: 0.01}}
"""

FINETUNE = """\
# Run: layerforge train finetune.yaml
name: finetune
seed: 5
model:
  input_shape: [4]
  init_from: {run: RUN}
  layers:
    - {type: dense, name: body, units: 12, activation: relu, trainable: false}
    - {type: batchnorm, name: norm, trainable: false}
    - {type: dense, name: new_head, units: 3, kernel_regularizer: {l2: 0.001}}
data: {dataset: iris, val: 0.2}
train:
  epochs: 3
  batch_size: 16
  device: cpu
  plots: false
  optimizer: {name: adamw, lr: 0.01, weight_decay: 0.5}
"""


def weights(run: Path, which: str = "last") -> dict:
    return load_file(str(run / "checkpoints" / which / "model.safetensors"))


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("base")
    (d / "base.yaml").write_text(BASE)
    assert lf.train(d / "base.yaml", out=d / "run").status == "completed"
    return d / "run"


def _finetune(tmp_path: Path, base_run: Path, extra: str = "") -> Path:
    text = FINETUNE.replace("RUN", str(base_run)).replace("  init_from: {run: " + str(base_run) + "}",
                                                          "  init_from: {run: " + str(base_run) + extra + "}")
    p = tmp_path / "finetune.yaml"
    p.write_text(text)
    return p


def test_finetune_loads_the_body_keeps_it_frozen_and_reports(base_run, tmp_path):
    spec = _finetune(tmp_path, base_run)
    result = lf.train(spec, out=tmp_path / "ft")
    assert result.status == "completed"
    src, got = weights(base_run, "best"), weights(tmp_path / "ft")
    for k in ("layers.body.0.weight", "layers.body.0.bias", "layers.norm.weight", "layers.norm.bias",
              "layers.norm.running_mean", "layers.norm.running_var", "layers.norm.num_batches_tracked"):
        assert torch.equal(src[k], got[k]), k  # loaded, then neither the optimizer (AdamW decay 0.5) nor BN moved it
    fresh = lf.build_model(spec)
    assert not torch.equal(fresh.layers["new_head"].weight, got["layers.new_head.weight"])  # the head trained
    report = json.loads((tmp_path / "ft" / "init_from.json").read_text())
    assert [r["layer"] for r in report["loaded"]] == ["body", "norm"] and report["absent"] == ["new_head"]
    assert report["unused"] == ["head"] and report["mismatched"] == []
    assert json.loads((tmp_path / "ft" / "run.json").read_text())["init_from"]["loaded"] == 2
    # only the head's two tensors are in the optimizer (frozen parameters get no state, no decay)
    state = torch.load(tmp_path / "ft" / "checkpoints" / "last" / "state.pt", weights_only=True)
    assert len(state["optimizer"]["param_groups"][0]["params"]) == 2
    assert "reg_loss" in result.last and "val_reg_loss" in result.last


def test_summary_counts_frozen_parameters_as_non_trainable(base_run, tmp_path):
    s = lf.summarize(_finetune(tmp_path, base_run))
    assert (s.total_params, s.trainable_params, s.non_trainable_params) == (60 + 24 + 39, 39, 84)


def test_frozen_batchnorm_uses_and_keeps_its_moving_statistics():
    model = lf.build_model({"model": {"input_shape": [3], "layers": [{"type": "batchnorm", "name": "bn", "trainable": False}]}})
    bn = model.layers["bn"]
    with torch.no_grad():
        bn.running_mean.fill_(1.0)
        bn.running_var.fill_(4.0)
    model.train()
    x = torch.randn(8, 3)
    y = model(x)
    assert not bn.training and torch.allclose(y, (x - 1) / torch.sqrt(torch.tensor(4.0 + bn.eps)))
    assert torch.equal(bn.running_mean, torch.ones(3)) and int(bn.num_batches_tracked) == 0


def test_renamed_layers_load_and_strict_refuses_a_missing_layer(base_run, tmp_path):
    from layerforge.engine.init_from import apply_init_from

    from layerforge.build import load, module

    spec, graph = load(_finetune(tmp_path, base_run, ", layers: {new_head: head}"))
    model = module(spec, graph)
    report = apply_init_from(spec, model)
    assert [r["layer"] for r in report.loaded] == ["body", "norm", "new_head"] and report.unused == []
    assert torch.equal(model.layers["new_head"].weight, weights(base_run, "best")["layers.head.weight"])
    strict = load(_finetune(tmp_path, base_run, ", strict: true"))
    with pytest.raises(SpecError, match="strict.*'new_head' has weights"):
        apply_init_from(strict[0], module(*strict))


@pytest.mark.parametrize("extra,words", [
    (", layers: {nope: head}", "'nope' is not a layer of this model"),
    (", layers: {new_head: nope}", "'nope' is not a layer of the source run"),
])
def test_init_from_mistakes_are_located_spec_errors_with_exit_code_2(base_run, tmp_path, capsys, extra, words):
    spec = _finetune(tmp_path, base_run, extra)
    r = run_cli(capsys, "train", str(spec), "--out", str(tmp_path / "x"))
    assert r.code == 2 and words in r.out + r.err and "finetune.yaml:6:" in r.out + r.err
    assert not (tmp_path / "x").exists()  # nothing written


def test_init_from_a_missing_run_or_a_mismatched_layer(tmp_path, base_run):
    spec = write_spec(tmp_path, FINETUNE.replace("RUN", str(tmp_path / "nowhere")))
    with pytest.raises(SpecError, match="init_from: no run directory"):
        lf.train(spec, out=tmp_path / "x")
    wide = _finetune(tmp_path, base_run, ", strict: true").read_text().replace("units: 12", "units: 10")
    (tmp_path / "wide.yaml").write_text(wide.replace("new_head", "head"))
    from layerforge.build import load, module
    from layerforge.engine.init_from import apply_init_from

    loose = load(tmp_path / "wide.yaml", ["model.init_from.strict=false"])
    model = module(*loose)
    fresh = model.layers["body"][0].weight.clone()
    report = apply_init_from(loose[0], model)  # every layer has 10 units or reads 10, not 12: none loads
    assert {m["layer"] for m in report.mismatched} == {"body", "norm", "head"} and not report.loaded
    assert "body.0.weight (10, 4) here, (12, 4) in 'body'" in report.line()
    assert torch.equal(model.layers["body"][0].weight, fresh)  # kept its fresh weights
    with pytest.raises(SpecError, match=r"'body' does not fit 'body'.*\(10, 4\) here, \(12, 4\) in 'body'"):
        lf.train(tmp_path / "wide.yaml", out=tmp_path / "y")


class StopAt(Callback):
    def __init__(self, epoch: int, step: int) -> None:
        self.at = (epoch, step)

    def on_start(self, info) -> None:
        self.stop = info.request_stop

    def on_step(self, epoch, step, loss) -> None:
        if (epoch, step) == self.at:
            self.stop()


def test_resumed_finetune_continues_from_its_own_checkpoint_exactly(base_run, tmp_path):
    import shutil

    src = tmp_path / "src"
    shutil.copytree(base_run, src)
    spec = _finetune(tmp_path, src)
    full = lf.train(spec, out=tmp_path / "full")
    stopped = lf.train(spec, out=tmp_path / "stopped", callbacks=[StopAt(2, 3)])  # mid-epoch: the partial reg_loss too
    assert stopped.status == "interrupted"
    shutil.rmtree(src)  # the source is gone: a resume must not read it again
    resumed = lf.train(resume=tmp_path / "stopped")
    assert resumed.status == "completed"
    a, b = weights(tmp_path / "full"), weights(tmp_path / "stopped")
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda r: {k: v for k, v in r.items() if not k.endswith("_s")}  # noqa: E731 (wall-clock fields)
    assert [strip(r) for r in full.history] == [strip(r) for r in resumed.history]


REG = {"name": "reg", "seed": 0, "model": {"input_shape": [5], "layers": [
    {"type": "dense", "name": "lin", "units": 1, "kernel_regularizer": {"l1": 0.03, "l2": 0.2},
     "bias_regularizer": "l2"}]},
    "train": {"epochs": 1, "batch_size": 96, "device": "cpu", "plots": False, "metrics": [],
              "optimizer": {"name": "sgd", "lr": 0.1}}}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_regularizers_add_keras_penalties_to_the_loss_and_its_gradient(precision):
    data = regression_bundle()  # 96 training rows: one full-batch step
    spec = {**REG, "train": {**REG["train"], "precision": precision}}
    w0 = lf.build_model(spec).layers["lin"]
    W, b = w0.weight.detach().clone(), w0.bias.detach().clone()
    result = lf.train(spec, data=data, save=False)
    x, y = data.train.x, data.train.y.reshape(-1, 1)
    reg = 0.03 * W.abs().sum() + 0.2 * (W ** 2).sum() + 0.01 * (b ** 2).sum()  # Keras: no 1/2 in l2
    err = x @ W.T + b - y
    grad_w = 2 * err.T @ x / len(x) + 0.03 * W.sign() + 2 * 0.2 * W
    grad_b = 2 * err.mean(0) + 2 * 0.01 * b
    trained = result.model.layers["lin"]
    tol = 1e-5 if precision == "fp32" else 2e-2  # bf16 autocast rounds the forward's matmul
    assert torch.allclose(trained.weight, W - 0.1 * grad_w, atol=tol)
    assert torch.allclose(trained.bias, b - 0.1 * grad_b, atol=tol)
    assert result.last["reg_loss"] == pytest.approx(float(reg), rel=1e-5)
    assert result.last["loss"] == pytest.approx(float((err ** 2).mean() + reg), rel=1e-5 if precision == "fp32" else 2e-2)
    W1, b1 = trained.weight.detach(), trained.bias.detach()
    reg1 = 0.03 * W1.abs().sum() + 0.2 * (W1 ** 2).sum() + 0.01 * (b1 ** 2).sum()
    assert result.last["val_reg_loss"] == pytest.approx(float(reg1), rel=1e-5)  # evaluate counts it too, as Keras


def test_a_model_with_every_layer_frozen_is_refused_before_training(tmp_path):
    spec = BASE.replace("relu}", "relu, trainable: false}").replace("{type: batchnorm, name: norm}",
                                                                       "{type: batchnorm, name: norm, trainable: false}")
    p = write_spec(tmp_path, spec.replace("units: 3}", "units: 3, trainable: false}"))
    with pytest.raises(SpecError, match="no trainable weights"):
        lf.train(p, out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.cuda
def test_cuda_fp16_with_a_frozen_body_and_a_penalty():
    """The gradient scaler path: the penalty is scaled with the loss, frozen weights stay bit for bit."""
    from tests.engine.engine_helpers import class_bundle, mlp_spec

    spec = mlp_spec(epochs=2, device="cuda", precision="fp16", optimizer={"name": "adamw", "lr": 0.01})
    spec["model"]["layers"][0].update(name="body", trainable=False)
    spec["model"]["layers"][2]["kernel_regularizer"] = {"l2": 0.01}
    before = lf.build_model(spec).layers["body"][0].weight.detach().clone()
    result = lf.train(spec, data=class_bundle(), save=False)
    assert result.status == "completed" and result.last["reg_loss"] > 0
    assert torch.equal(result.model.layers["body"][0].weight.detach().cpu(), before)


def test_validate_checks_init_from_without_loading_weights(base_run, tmp_path, capsys):
    good = _finetune(tmp_path, base_run)
    assert run_cli(capsys, "validate", str(good)).code == 0
    bad = write_spec(tmp_path, FINETUNE.replace("RUN", str(base_run)).replace("{run: ", "{layers: {x: head}, run: "),
                     "bad.yaml")
    r = run_cli(capsys, "validate", str(bad))
    assert r.code == 2 and "'x' is not a layer of this model" in r.out + r.err and "bad.yaml:6:" in r.out + r.err
