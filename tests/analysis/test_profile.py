"""`layerforge profile` as a library: per-layer sums, the model left untouched, every JSON field, sweeps,
several configs side by side, uncounted FLOPs, dtypes and settings. Times are never asserted (they depend
on the machine); what is asserted is the bookkeeping around them."""
from __future__ import annotations

import json

import pytest
import torch

from layerforge.analysis.compare import profile_configs
from layerforge.analysis.profile_schema import ProfileSpec
from layerforge.analysis.profiler import make_inputs, make_run, profile_model, resolve_settings, run_conditions
from layerforge.errors import SpecError, UsageError
from layerforge.graph import build_module
from layerforge.build import load as load_spec
from tests.analysis.conftest import BN, FAST, MLP
from tests.helpers import write_spec


def _profile(paths, **kw):
    settings = {**FAST, **kw.pop("settings", {})}
    return profile_configs([str(p) for p in paths], settings=settings, quick=True, **kw)


def test_per_layer_times_add_up_as_reported(tmp_path):
    r = _profile([write_spec(tmp_path, MLP)])
    (cfg,) = r.configs
    assert [b.batch_size for b in cfg.batches] == [2, 8]
    for b in cfg.batches:
        assert [lp.name for lp in b.layers] == ["dense_1", "dense_2"]
        for lp in b.layers:
            assert lp.forward and lp.forward_train and lp.backward
            assert lp.forward.repeats >= 3 and lp.forward.p25 <= lp.forward.median <= lp.forward.p75
        assert sum(lp.share for lp in b.layers) == pytest.approx(1.0)
        inf, tr = b.checks
        assert (inf.mode, tr.mode) == ("inference", "train")
        assert inf.layer_sum == pytest.approx(sum(lp.forward.median for lp in b.layers))
        parts = sum(lp.forward_train.median + lp.backward.median for lp in b.layers) + b.optimizer_step.median
        assert tr.layer_sum == pytest.approx(parts)
        for chk, e2e in ((inf, b.inference), (tr, b.train)):
            assert chk.end_to_end == e2e.median
            assert chk.rel_diff == pytest.approx((chk.layer_sum - e2e.median) / e2e.median)
            assert chk.ok == (abs(chk.rel_diff) <= chk.tolerance)
            assert ("within" in chk.note) == chk.ok


def test_profiling_leaves_weights_batchnorm_stats_and_rng_unchanged(tmp_path):
    spec, graph = load_spec(write_spec(tmp_path, BN))
    torch.manual_seed(0)
    model = build_module(graph)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    settings = resolve_settings(spec.profile, {**FAST, "batch_sizes": [4]}, quick=True)
    with run_conditions(settings, "cpu"):
        run = make_run(settings, quick=True)
        profile_model(model, graph, run)
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), f"profiling changed {k}"
    assert torch.equal(torch.get_rng_state(), rng)
    # The test can fail: a training step on the model itself does move the running statistics.
    model.train()
    model(torch.randn(4, 12))
    assert not torch.equal(before["layers.batchnorm_1.running_mean"], model.state_dict()["layers.batchnorm_1.running_mean"])


def test_json_has_every_figure_and_the_conditions(tmp_path):
    r = _profile([write_spec(tmp_path, MLP)])
    d = json.loads(json.dumps(r.to_dict()))
    assert set(d) == {"warnings", "conditions", "machine", "configs", "comparison", "sweep"}
    assert {"device", "device_name", "dtype", "threads", "torch_version", "compile", "repeats", "timing",
            "optimizer", "mode", "batch_sizes", "loss", "tolerance"} <= set(d["conditions"])
    assert d["conditions"]["threads"] == 1 and d["conditions"]["torch_version"] == torch.__version__
    assert {"matmul_gflops", "copy_gbps", "balance", "device_name", "bf16_peak_tflops"} <= set(d["machine"])
    cfg = d["configs"][0]
    assert {"name", "params", "flops_per_sample", "uncounted", "batches", "verdict", "slowest"} <= set(cfg)
    b = cfg["batches"][0]
    assert {"batch_size", "flops", "backward_flops", "inference", "inference_samples_per_s", "train",
            "train_samples_per_s", "optimizer_step", "layers", "checks", "memory", "compile_time", "bound",
            "intensity"} <= set(b)
    for st in (b["inference"], b["train"]):
        assert {"median", "iqr", "p95", "repeats", "settled"} <= set(st)
    lp = b["layers"][0]
    assert {"name", "type", "params", "flops", "backward_flops", "forward", "forward_train", "backward", "share",
            "gflops", "intensity", "bound"} <= set(lp)
    assert set(b["memory"]) == {"inference", "train"}
    for mem in b["memory"].values():
        for part in ("measured", "analytic", "difference"):
            assert set(mem[part]) == {"parameters", "gradients", "optimizer_state", "activations", "inputs", "peak"}
        assert all(mem["difference"][k] == mem["measured"][k] - mem["analytic"][k] for k in mem["difference"])


def test_measured_memory_counts_gradients_and_adam_state(tmp_path):
    r = _profile([write_spec(tmp_path, MLP)])
    params = r.configs[0].params
    train = next(m for m in r.configs[0].batches[-1].memory if m.mode == "train")
    assert train.measured.parameters == params * 4
    assert train.measured.gradients == params * 4
    # Adam: exp_avg and exp_avg_sq per parameter, plus a scalar step counter per parameter tensor.
    assert 2 * params * 4 <= train.measured.optimizer_state <= 2 * params * 4 + 64
    assert train.measured.activations > 0 and train.measured.peak >= 4 * params * 4
    assert [p.name for p in train.phases] == ["forward", "backward", "optimizer"]


def test_sweep_runs_every_value_and_writes_the_png(tmp_path):
    a = write_spec(tmp_path, MLP, "a.yaml")
    b = write_spec(tmp_path, MLP.replace("name: mlp", "name: other"), "b.yaml")
    png = tmp_path / "sweep.png"
    r = _profile([a, b], sweep="model.layers.0.units=4,32", plot=png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sw = r.sweep
    assert sw.key == sw.path == "model.layers.0.units" and sw.values == ["4", "32"] and sw.plot == str(png)
    assert {(p.config, p.value, p.batch_size) for p in sw.points} == {
        (c, v, bs) for c in ("mlp", "other") for v in ("4", "32") for bs in (2, 8)}
    small = next(p for p in sw.points if p.config == "mlp" and p.value == "4" and p.batch_size == 2)
    big = next(p for p in sw.points if p.config == "mlp" and p.value == "32" and p.batch_size == 2)
    assert big.flops > small.flops
    assert all(not b.layers[0].forward for c in r.configs for b in c.batches), "sweeps skip per-layer timing"


def test_seq_len_sweep_sets_the_time_axis(tmp_path):
    p = write_spec(tmp_path, """
        name: seq
        model:
          input_shape: [5, 3]
          layers:
            - {type: lstm, units: 4}
        """)
    r = _profile([p], sweep="seq_len=5,10", settings={"batch_sizes": [1], "mode": "inference"})
    assert r.sweep.path == "model.input_shape.0"
    f5, f10 = (pt.flops for pt in r.sweep.points)
    assert f10 == 2 * f5  # an LSTM's work is linear in the sequence length


def test_batch_size_sweep_replaces_the_batch_sizes(tmp_path):
    r = _profile([write_spec(tmp_path, MLP)], sweep="batch_size=1,4", plot=tmp_path / "b.png")
    assert r.sweep.path == "batch size"
    assert [(p.value, p.batch_size) for p in r.sweep.points] == [("1", 1), ("4", 4)]
    assert [b.batch_size for b in r.configs[0].batches] == [1, 4]


def test_several_configs_are_compared_side_by_side(tmp_path):
    paths = [write_spec(tmp_path, MLP, "a.yaml"),
             write_spec(tmp_path, MLP.replace("name: mlp", "name: wide").replace("units: 16", "units: 64"), "b.yaml")]
    r = _profile(paths)
    rows = r.comparison
    assert [(x["config"], x["batch_size"]) for x in rows] == [("mlp", 2), ("mlp", 8), ("wide", 2), ("wide", 8)]
    wide = next(x for x in rows if x["config"] == "wide")
    mlp = next(x for x in rows if x["config"] == "mlp")
    assert wide["params"] > mlp["params"] and wide["flops_per_sample"] > mlp["flops_per_sample"]
    assert all(x["inference_median"] > 0 and x["train_peak_bytes"] > 0 for x in rows)


def test_uncounted_flops_are_listed_never_zero(tmp_path, uncounted_layer):
    p = write_spec(tmp_path, f"""
        name: plug
        model:
          input_shape: [6]
          layers:
            - {{type: dense, units: 8}}
            - {{type: {uncounted_layer}}}
        """)
    r = _profile([p], settings={"batch_sizes": [2]})
    cfg = r.configs[0]
    assert cfg.uncounted == ["test_uncounted_1"]
    lp = cfg.batches[0].layers[1]
    assert lp.flops is None and lp.backward_flops is None and lp.gflops is None and lp.bound is None
    assert "uncounted" in cfg.verdict and "test_uncounted_1" in cfg.verdict
    d = r.to_dict()["configs"][0]
    assert d["batches"][0]["layers"][1]["flops"] is None
    assert d["flops_per_sample"] == 2 * 6 * 8 + 8  # only the dense layer: counted FLOPs are not padded with 0s


def test_bf16_autocast_on_cpu(tmp_path):
    r = _profile([write_spec(tmp_path, MLP)], settings={"dtype": "bf16", "batch_sizes": [4]})
    assert r.conditions["dtype"] == "bf16" and r.conditions["autocast"]
    assert r.machine.matmul_dtype == "bf16"
    b = r.configs[0].batches[0]
    assert b.inference.median > 0 and b.train.median > 0
    train = next(m for m in b.memory if m.mode == "train")
    # The trace runs under the same autocast: bf16 activations and bf16 copies of the weights, as measured.
    assert train.analytic.activations == train.measured.activations
    assert train.analytic.activations < (16 + 4) * 4 * 4 + (12 * 16 + 16 * 4) * 2 * 2


def test_integer_inputs_are_ids_below_input_dim(tmp_path):
    _, graph = load_spec(write_spec(tmp_path, """
        model:
          input_shape: [7]
          layers:
            - {type: embedding, input_dim: 5, output_dim: 3}
        """))
    (x,) = make_inputs(graph, 50, "cpu")
    assert x.dtype == torch.long and x.shape == (50, 7) and 0 <= int(x.min()) and int(x.max()) < 5


def test_fp16_on_cpu_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="fp16"):
        _profile([write_spec(tmp_path, MLP)], settings={"dtype": "fp16"})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without a GPU")
def test_cuda_without_a_gpu_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="CUDA"):
        _profile([write_spec(tmp_path, MLP)], settings={"device": "cuda"})


def test_profile_section_gives_defaults_and_flags_override_them():
    base = ProfileSpec(batch_sizes=[64, 1, 64], mode="train", threads=3)
    assert base.batch_sizes == [1, 64]
    s = resolve_settings(base, {"mode": "inference", "threads": None, "batch_sizes": [2]})
    assert (s.mode, s.threads, s.batch_sizes) == ("inference", 3, [2])
    with pytest.raises(UsageError, match="batch_sizes"):
        resolve_settings(base, {"batch_sizes": [0]})


def test_a_bad_profile_section_is_a_located_spec_error(tmp_path):
    p = write_spec(tmp_path, MLP.replace("batch_sizes: [2, 8]", "batch_size: [2]"))
    with pytest.raises(SpecError) as e:
        load_spec(p)
    (issue,) = e.value.issues
    assert issue.line == 8 and "batch_size" in issue.message and "batch_sizes" in (issue.hint or "")


def test_a_model_without_trainable_parameters_skips_the_training_step(tmp_path):
    p = write_spec(tmp_path, """
        model:
          input_shape: [2, 3]
          layers:
            - {type: flatten}
        """)
    r = _profile([p], settings={"batch_sizes": [2]})
    b = r.configs[0].batches[0]
    assert b.train is None and b.inference is not None
    assert any("no trainable parameters" in n for n in r.configs[0].notes)


@pytest.mark.slow
def test_compile_time_is_reported_apart_from_steady_state(tmp_path):
    r = _profile([write_spec(tmp_path, MLP)], settings={"compile": True, "batch_sizes": [2]})
    b = r.configs[0].batches[0]
    assert set(b.compile_time) == set(b.first_call) == {"inference", "train"}
    assert b.first_call["inference"] >= b.compile_time["inference"] >= 0
    assert r.conditions["compile"] is True
    assert all(not c.ok and "torch.compile" in c.note for c in b.checks)


@pytest.mark.cuda
def test_cuda_profile_measures_the_bf16_peak_and_the_fraction_reached(tmp_path):
    r = _profile([write_spec(tmp_path, MLP)], settings={"device": "cuda", "dtype": "bf16", "threads": None})
    assert r.machine.bf16_peak_tflops and r.machine.bf16_peak_tflops > 1
    b = r.configs[0].batches[-1]
    assert 0 < b.fraction_of_peak["inference"] < 1 and 0 < b.fraction_of_peak["train"] < 1
    train = next(m for m in b.memory if m.mode == "train")
    assert train.measured.gradients == r.configs[0].params * 4 and "cuda" in train.method
