"""The fast defaults (``train.fast``, ``train.compile: auto``): what each resolves to per device, that each
switch turns its own speed-up off, that results do not change beyond rounding, that ``deterministic: true``
repeats bit for bit, that exact resume still holds, and that every choice is reported.

(The speed itself is measured by ``benchmarks/train_overhead.py``, not here; CUDA tests are marked ``cuda``.)
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import layerforge as lf
from layerforge.engine.events import Callback
from layerforge.engine.rundir import TIMINGS
from layerforge.engine.schema import TrainSpec
from layerforge.errors import SpecError
from layerforge.runtime import compile_pays, resolve_speedups
from tests.engine.engine_helpers import class_bundle, mlp_spec
from tests.helpers import run_cli, write_spec

ROOT = Path(__file__).resolve().parents[2]
CNN = {"input_shape": [1, 8, 8], "layers": [
    {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"type": "dropout", "rate": 0.2}, {"type": "flatten"}, {"type": "dense", "units": 10}]}


def cnn_spec(**train) -> dict:
    return {"name": "tiny_cnn", "seed": 3, "model": CNN, "data": {"dataset": "digits", "val": 0.2},
            "train": {"epochs": 2, "batch_size": 128, "device": "cpu", "plots": False, **train}}


def resolve(device: str = "cpu", model=None, deterministic: bool = False, optimizer: str = "adam", **train):
    t = TrainSpec(**train)
    model = model if model is not None else lf.build_model({"name": "m", "model": CNN})
    return resolve_speedups(t.fast, t.compile, deterministic, torch.device(device), optimizer, model)


def iris_spec(**train) -> dict:
    return {"name": "iris", "seed": 0, "data": {"dataset": "iris", "val": 0.2},
            "model": {"input_shape": [4], "layers": [{"type": "dense", "units": 16, "activation": "relu"},
                                                     {"type": "dense", "units": 3}]},
            "train": {"epochs": 2, "batch_size": 16, "device": "cpu", "plots": False, **train}}


def timing_free(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMINGS} for r in history]


# --- what the defaults resolve to ------------------------------------------------------------------
def test_cpu_defaults_fuse_the_optimizer_use_channels_last_for_convs_and_leave_cuda_switches_off():
    s = resolve()
    assert (s.optimizer, s.channels_last, s.tf32, s.cudnn_benchmark, s.pin_memory) == ("fused", True, False, False, False)
    assert s.inference_mode and s.compile == "auto"
    assert s.optimizer_kwargs() == {"fused": True}
    dense = lf.build_model(mlp_spec())
    assert resolve(model=dense).channels_last is False  # no 2-D convolution: nothing to lay out
    assert resolve(optimizer="rmsprop").optimizer == "for-loop"  # torch has no fused RMSprop


def test_each_switch_turns_its_own_speedup_off_and_fast_false_turns_off_all():
    s = resolve(fast={"fused_optimizer": False})
    assert s.optimizer == "for-loop" and s.channels_last and s.optimizer_kwargs() == {"foreach": False}
    assert resolve(fast={"channels_last": False}).channels_last is False
    assert resolve(fast={"inference_mode": False}).inference_mode is False
    assert resolve(compile=False).compile == "off"
    off = resolve(fast=False)
    assert (off.optimizer, off.channels_last, off.inference_mode) == ("for-loop", False, False)


def test_cuda_switches_resolve_on_by_default_and_off_under_deterministic():
    # Resolution needs no GPU: it reads the device type (the parameters stay where they are).
    s = resolve("cuda")
    assert (s.tf32, s.cudnn_benchmark, s.pin_memory, s.channels_last) == (True, True, True, True)
    d = resolve("cuda", deterministic=True)
    assert (d.tf32, d.cudnn_benchmark, d.compile) == (False, False, "off")
    assert "deterministic" in d.why["tf32"] and d.pin_memory  # pinned copies do not change results
    assert resolve("cuda", fast={"tf32": False}).tf32 is False
    assert resolve("cuda", optimizer="rmsprop").optimizer == "foreach"


def test_contradictory_fast_settings_are_located_spec_errors(tmp_path):
    bad = write_spec(tmp_path, "name: x\nmodel: {input_shape: [4], layers: [{type: dense, units: 3}]}\n"
                               "train:\n  optimizer: {name: rmsprop}\n  fast: {fused_optimizer: true}\n")
    with pytest.raises(SpecError, match="no fused rmsprop") as e:
        lf.validate(str(bad))
    assert e.value.issues[0].line == 3
    with pytest.raises(SpecError, match="deterministic: true turns off fast.tf32"):
        lf.validate({"name": "x", "model": {"input_shape": [4], "layers": [{"type": "dense", "units": 3}]},
                     "train": {"deterministic": True, "fast": {"tf32": True}}})
    with pytest.raises(SpecError, match="expected auto, true or false"):
        lf.validate({"name": "x", "model": {"input_shape": [4], "layers": [{"type": "dense", "units": 3}]},
                     "train": {"compile": "sometimes"}})


def test_compile_pays_only_when_the_eager_time_left_outweighs_the_compile_time():
    assert compile_pays(0.001, 10_000, "cpu")[0] is False  # 10 s left: never worth ≈ 60 s of compiling
    pays, why = compile_pays(0.5, 100_000, "cuda")  # ≈ 14 h left
    assert pays and "s to compile" in why
    assert compile_pays(0.1, 10_000, "cuda")[0] is True and compile_pays(0.1, 10_000, "cpu")[0] is True
    assert compile_pays(0.1, 1_000, "cuda")[0] is False


# --- results do not change beyond rounding ------------------------------------------------------------
@pytest.mark.parametrize("config, epochs", [("mlp_iris", 4), ("cnn_digits", 1), ("mlp_digits", 1)])
def test_fused_and_unfused_optimizers_reach_the_same_metrics_on_the_shipped_examples(config, epochs):
    """Tolerance (docs/benchmarks.md): losses within 1e-4 relative, accuracies equal. Measured after 5 epochs
    of each: relative loss differences ≤ 3e-8, every accuracy identical."""
    results = {}
    for fused in ("true", "false"):
        r = lf.train(str(ROOT / "configs" / f"{config}.yaml"), save=False,
                     overrides=[f"train.epochs={epochs}", f"train.fast.fused_optimizer={fused}"])
        results[fused] = r.last
    a, b = results["true"], results["false"]
    for k, v in a.items():
        if k.endswith("_s") or k in ("epoch", "step", "lr"):
            continue
        if "loss" in k:
            assert math.isclose(v, b[k], rel_tol=1e-4), (k, v, b[k])
        else:
            assert v == b[k], (k, v, b[k])


def test_two_deterministic_runs_give_identical_weights_and_metrics():
    spec = cnn_spec(epochs=1, deterministic=True)
    a, b = lf.train(spec, save=False), lf.train(spec, save=False)
    assert timing_free(a.history) == timing_free(b.history)
    for (name, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(pa, pb), name


def test_channels_last_and_fused_runs_resume_bit_for_bit(tmp_path):
    full = lf.train(cnn_spec(epochs=3), out=tmp_path / "full")
    lf.train(cnn_spec(epochs=1), out=tmp_path / "part")
    resumed = lf.train(resume=tmp_path / "part", overrides=["train.epochs=3"])
    assert timing_free(resumed.history) == timing_free(full.history)
    for (name, pa), pb in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(pa, pb), name


def test_a_resume_steps_with_this_runs_optimizer_implementation(tmp_path):
    """The saved state says fused; resumed with fast.fused_optimizer: false, the step is torch's default."""
    lf.train(mlp_spec(epochs=1, checkpoint_every=1), data=class_bundle(), out=tmp_path / "run")
    from layerforge.engine import checkpoint as ckpt
    from layerforge.engine.optim import build_optimizer, load_optimizer_state

    saved = ckpt.load_state(tmp_path / "run" / "checkpoints" / "last")["optimizer"]
    assert saved["param_groups"][0]["fused"] is True
    model = lf.build_model(mlp_spec())
    opt = build_optimizer(TrainSpec().optimizer, model.parameters(), {"foreach": False})
    load_optimizer_state(opt, saved)
    assert not opt.param_groups[0]["fused"] and opt.param_groups[0]["foreach"] is False
    assert all(s["step"].device.type == "cpu" for s in opt.state.values())


# --- inference mode, compile: auto, reporting ---------------------------------------------------------
class Seen(Callback):
    def __init__(self) -> None:
        self.info = None
        self.notes: list[str] = []

    def on_start(self, info) -> None:
        self.info = info

    def on_note(self, message: str) -> None:
        self.notes.append(message)


@pytest.mark.parametrize("inference", [True, False])
def test_validation_runs_under_inference_mode_unless_switched_off(inference):
    from layerforge.build import build
    from layerforge.engine.trainer import Trainer

    spec, _, model = build(mlp_spec(epochs=1, fast={"inference_mode": inference}))
    modes = []  # (training, inference mode, grad enabled) of every forward call but the one-sample shape probe
    model.register_forward_hook(lambda m, i, o: modes.append(
        (m.training, torch.is_inference_mode_enabled(), torch.is_grad_enabled())) if len(i[0]) > 1 else None)
    Trainer(model, class_bundle(), spec.train).fit()
    validation = [m for m in modes if not m[0]]
    assert validation and all(m == (False, inference, False) for m in validation)
    assert any(m == (True, False, True) for m in modes)  # training steps keep autograd


def test_compile_auto_stays_eager_on_a_short_run_and_reports_why(tmp_path):
    seen = Seen()
    r = lf.train(iris_spec(), out=tmp_path / "run", callbacks=[seen])
    assert "compile: auto (decided after the first steps)" in seen.info.speed
    assert seen.notes and seen.notes[0].startswith("compile: auto stays eager:")
    env = json.loads((tmp_path / "run" / "environment.json").read_text())["speedups"]
    assert env["compile"]["value"] == "off" and "s to compile" in env["compile"]["why"]
    assert env["optimizer"]["value"] == "fused" and "compile_s" not in r.history[0]


def test_compile_auto_compiles_a_run_long_enough_and_reports_the_compile_time_apart(tmp_path, monkeypatch):
    """With the compile-time estimate at 0 every run pays back; torch.compile is replaced by a wrapper that
    counts (a real compile takes tens of seconds here), so what is tested is the decision and the swap."""
    import layerforge.runtime as rt

    compiled = []

    def fake_compile(module, **kw):
        compiled.append(module)
        return module

    monkeypatch.setattr(rt, "COMPILE_SECONDS", 0.0)
    monkeypatch.setattr(torch, "compile", fake_compile)
    seen = Seen()
    r = lf.train(iris_spec(), out=tmp_path / "run", callbacks=[seen])
    assert len(compiled) == 1 and seen.notes[0].startswith("compile: auto compiles:")
    assert seen.notes[1].startswith("compiled in")
    # 8 steps per epoch: 2 warm-up + 6 timed, decided at the end of epoch 1, the compile step opens epoch 2
    assert "compile_s" not in r.history[0] and "compile_s" in r.history[1]
    env = json.loads((tmp_path / "run" / "environment.json").read_text())["speedups"]
    assert env["compile"]["value"] == "on" and "compile_s" in env["compile"]
    # A resumed run keeps the decision (it compiles again at once, without probing).
    lf.train(resume=tmp_path / "run", overrides=["train.epochs=3"], callbacks=[seen])
    assert len(compiled) == 2 and "compiled" in seen.info.speed


def test_train_header_shows_the_speedups_in_use(tmp_path, capsys):
    spec = write_spec(tmp_path, "# Run: layerforge train spec.yaml\nname: s\nseed: 0\n"
                                "model: {input_shape: [4], layers: [{type: dense, units: 3}]}\n"
                                "data: {dataset: iris, val: 0.2}\ntrain: {epochs: 1, device: cpu, plots: false}\n")
    r = run_cli(capsys, "train", str(spec), "--out", str(tmp_path / "run"))
    assert r.code == 0, r.err
    speed = next(line for line in r.out.splitlines() if line.startswith("speed: "))
    assert "fused adam" in speed and "inference_mode eval" in speed
    assert "note: compile: auto stays eager" in r.out


def test_run_flags_put_torch_globals_back_after_a_run():
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
              torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32)
    lf.train(mlp_spec(epochs=1, threads=1, deterministic=True), data=class_bundle(), save=False)
    after = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32)
    assert after == before


# --- CUDA paths (skipped without a GPU) ---------------------------------------------------------------
@pytest.mark.cuda
def test_cuda_conv_run_uses_every_default_and_matches_predict_on_the_cpu(tmp_path):
    seen = Seen()
    r = lf.train(cnn_spec(device="cuda", precision="bf16"), out=tmp_path / "run", callbacks=[seen])
    env = json.loads((tmp_path / "run" / "environment.json").read_text())["speedups"]
    assert {k: env[k]["value"] for k in ("optimizer", "channels_last", "tf32", "cudnn_benchmark", "pin_memory")} == \
        {"optimizer": "fused", "channels_last": True, "tf32": True, "cudnn_benchmark": True, "pin_memory": True}
    assert "tf32" in seen.info.speed and "channels-last" in seen.info.speed
    x = torch.rand(300, 1, 8, 8)
    on_gpu = lf.predict(r.run_dir, x, device="cuda", probabilities=True)
    on_cpu = lf.predict(r.run_dir, x, device="cpu", probabilities=True)
    assert (on_gpu.predictions == on_cpu.predictions).mean() > 0.99


@pytest.mark.cuda
def test_cuda_deterministic_fused_runs_repeat_bit_for_bit():
    spec = cnn_spec(device="cuda", deterministic=True)
    a, b = lf.train(spec, save=False), lf.train(spec, save=False)
    assert timing_free(a.history) == timing_free(b.history)
    for pa, pb in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        assert torch.equal(pa, pb)


@pytest.mark.cuda
def test_cuda_run_flags_are_restored_after_training():
    flags = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    lf.train(mlp_spec(epochs=1, device="cuda"), data=class_bundle(), save=False)
    assert (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == flags
