"""The measuring pieces under `profile`: statistics of samples, the adaptive repeat rule, the CPU memory
tracker, per-layer capture, and the analytic memory estimate."""
from __future__ import annotations

import contextlib

import pytest
import torch

from layerforge.analysis.layer_timing import capture_inputs, time_layers
from layerforge.analysis.memory import tensor_bytes, track
from layerforge.analysis.timing import TimingSettings, measure, summarize_samples
from layerforge.graph import build_module
from layerforge.build import load as load_spec
from tests.analysis.conftest import MLP
from tests.helpers import write_spec

QUICK = TimingSettings(warmup=1, min_run_time=0.0, max_run_time=0.05, min_repeats=3, threshold=0.5)


def test_sample_statistics_use_linear_interpolation_quantiles():
    st = summarize_samples([4.0, 1.0, 3.0, 2.0, 5.0], threshold=0.1)
    assert (st.min, st.p25, st.median, st.p75, st.max) == (1.0, 2.0, 3.0, 4.0, 5.0)
    assert st.iqr == 2.0 and st.p95 == pytest.approx(4.8) and st.mean == 3.0 and st.repeats == 5
    assert not st.settled  # IQR/median = 0.67 > 0.1
    assert summarize_samples([1.0, 1.0, 1.0]).settled


def test_measure_warms_up_then_repeats_at_least_min_repeats():
    calls = []
    st = measure(lambda: calls.append(1), TimingSettings(warmup=4, min_run_time=0.0, max_run_time=1.0, min_repeats=7,
                                                         threshold=10.0))
    assert st.repeats == 7 and len(calls) == 4 + 7


def test_measure_stops_at_max_repeats_and_runs_setup_untimed_before_each_call():
    order = []
    st = measure(lambda: order.append("f"), TimingSettings(warmup=1, min_run_time=10.0, max_run_time=10.0,
                                                            min_repeats=2, threshold=1e-9, max_repeats=5),
                 setup=lambda: order.append("s"))
    assert st.repeats == 5
    assert order == ["s", "f"] * 6


def test_cpu_tracker_sees_allocations_per_phase():
    def go(phase):
        with phase("make"):
            a = torch.empty(1 << 20, dtype=torch.uint8)  # 1 MiB, kept
            b = torch.empty(2 << 20, dtype=torch.uint8)  # 2 MiB, freed inside the phase
            del b
        with phase("free"):
            del a

    pm = track(go, "cpu")
    make, free = pm.phases
    assert (make.start, make.end, make.peak) == (0, 1 << 20, 3 << 20)
    assert (free.start, free.end) == (1 << 20, 0)
    assert pm.peak == 3 << 20 and pm.peak_phase == "make"


def test_tensor_bytes_counts_each_storage_once():
    a = torch.zeros(10)
    assert tensor_bytes([a, a[2:], None]) == 40


def test_captured_inputs_keep_the_gradient_flags_of_the_real_pass(tmp_path):
    _, graph = load_spec(write_spec(tmp_path, MLP))
    model = build_module(graph)
    x = torch.randn(3, 12)
    cap = capture_inputs(model, [x], train=True, autocast=contextlib.nullcontext)
    assert not cap["dense_1"][0].requires_grad  # the model input needs no gradient
    assert cap["dense_2"][0].requires_grad and cap["dense_2"][0].shape == (3, 16)


def test_every_layer_gets_forward_and_backward_times(tmp_path):
    _, graph = load_spec(write_spec(tmp_path, MLP))
    model = build_module(graph)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    times = time_layers(model, [torch.randn(3, 12)], inference=True, train=True, settings=QUICK,
                        sync=lambda: None, autocast=contextlib.nullcontext)
    assert list(times) == ["dense_1", "dense_2"]
    for t in times.values():
        assert t.forward.repeats >= 3 and t.forward_train.repeats >= 3 and t.backward.repeats >= 3
    assert all(p.grad is None for p in model.parameters()), "timing leaves no gradients behind"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_analytic_memory_split(tmp_path):
    """Parameters, gradients and Adam's two state tensors per parameter, exactly; the activations are
    traced (tests/analysis/test_memory_estimate.py checks them against measurement)."""
    from layerforge.analysis.estimate import estimate_memory

    _, graph = load_spec(write_spec(tmp_path, MLP))
    p = 12 * 16 + 16 + 16 * 4 + 4
    train = estimate_memory(graph, 8, train=True, optimizer="adam").split
    assert (train.parameters, train.gradients) == (4 * p, 4 * p)
    assert 8 * p <= train.optimizer_state <= 8 * p + 4 * 8  # exp_avg, exp_avg_sq (+ a step counter each)
    assert train.inputs == 12 * 8 * 4 and train.activations >= (16 + 4) * 8 * 4
    assert estimate_memory(graph, 8, train=True, optimizer="sgd").split.optimizer_state == 0
    inf = estimate_memory(graph, 8, train=False).split
    # dense_1's linear output and its ReLU output are alive together (16 + 16 floats per sample): the peak
    assert inf.gradients == 0 and inf.activations == (16 + 16) * 8 * 4
