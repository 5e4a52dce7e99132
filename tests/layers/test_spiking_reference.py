"""The spiking neurons against snnTorch 1.0 (a dev-only dependency): for the same input currents, β,
threshold and reset mode, the membrane and spike traces equal ``snn.Leaky``'s exactly over 50 steps, the
surrogate gradients equal ``snntorch.surrogate``'s within 1e-6, and so do whole BPTT gradients."""
from __future__ import annotations

import pytest
import snntorch as snn
import torch
from snntorch import surrogate

from layerforge.layers.spiking import LIF, RLIF
from layerforge.layers.spiking_nn import spike

T, B, F = 50, 4, 20


def currents(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, B, F, generator=g) * 0.6 + 0.35  # (T, B, F): enough to fire often, not always


def run_snntorch(neuron, x: torch.Tensor, recurrent: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Step an snnTorch neuron over x (T, B, F); returns the (T, B, F) spike and membrane traces."""
    state = neuron.reset_mem()
    spk_rec, mem_rec = [], []
    for t in range(x.shape[0]):
        if recurrent:
            spk, mem = neuron(x[t], *state)
            state = (spk, mem)
        else:
            spk, mem = neuron(x[t], state)
            state = mem
        spk_rec.append(spk)
        mem_rec.append(mem)
    return torch.stack(spk_rec), torch.stack(mem_rec)


def lf_traces(x: torch.Tensor, **params) -> tuple[torch.Tensor, torch.Tensor]:
    traces = []
    for output in ("spikes", "membrane"):
        module = LIF.model_validate({"type": "lif", **params, "output": output}).build([(F,)], steps=x.shape[0])
        traces.append(module(x.flatten(0, 1)).unflatten(0, (x.shape[0], -1)))
    return traces[0], traces[1]


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("beta,threshold", [(0.9, 1.0), (0.73, 0.5), (1.0, 1.3)])
def test_lif_traces_equal_snntorch_leaky_exactly_over_50_steps(reset, beta, threshold):
    x = currents()
    ref_spk, ref_mem = run_snntorch(snn.Leaky(beta=beta, threshold=threshold, reset_mechanism=reset), x)
    spk, mem = lf_traces(x, beta=beta, threshold=threshold, reset=reset)
    assert 0.05 < ref_spk.mean().item() < 0.95  # the traces do spike and reset
    assert torch.equal(spk, ref_spk)
    assert torch.equal(mem, ref_mem)


def test_per_neuron_beta_traces_equal_snntorch_with_a_beta_tensor():
    x = currents(1)
    lf = LIF.model_validate({"type": "lif", "beta": 0.8, "beta_per_neuron": True, "learn_beta": True})
    module = lf.build([(F,)], steps=T)
    betas = torch.linspace(0.5, 1.0, F)
    with torch.no_grad():
        module.beta.copy_(betas)
    ref_spk, _ = run_snntorch(snn.Leaky(beta=betas.clone(), learn_beta=True), x)
    assert torch.equal(module(x.flatten(0, 1)).unflatten(0, (T, -1)), ref_spk)


@pytest.mark.parametrize("kind,ref", [("atan", surrogate.atan(alpha=2.0)), ("atan", surrogate.atan(alpha=5.0)),
                                      ("fast_sigmoid", surrogate.fast_sigmoid(slope=25)),
                                      ("fast_sigmoid", surrogate.fast_sigmoid(slope=3)),
                                      ("sigmoid", surrogate.sigmoid(slope=25))])
def test_surrogate_gradients_equal_snntorch_within_1e_6(kind, ref):
    slope = ref.__closure__[0].cell_contents  # the alpha/slope the snnTorch factory captured
    x = torch.linspace(-2, 2, 4001, dtype=torch.float32)
    a = x.clone().requires_grad_(True)
    b = x.clone().requires_grad_(True)
    up = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    out_a, out_b = spike(a, kind, float(slope)), ref(b)
    assert torch.equal(out_a, out_b)  # the forward is the same Heaviside step (x > 0)
    (out_a * up).sum().backward()
    (out_b * up).sum().backward()
    assert a.grad.abs().max() > 0.1
    torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-6)


def test_default_slopes_are_snntorchs():
    x = torch.linspace(-1, 1, 101, requires_grad=True)
    for kind, ref in (("atan", surrogate.atan()), ("fast_sigmoid", surrogate.fast_sigmoid()),
                      ("sigmoid", surrogate.sigmoid())):
        (ga,) = torch.autograd.grad(spike(x, kind).sum(), x)
        (gb,) = torch.autograd.grad(ref(x).sum(), x)
        torch.testing.assert_close(ga, gb, rtol=0, atol=1e-6)


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("kind,ref", [("atan", surrogate.atan()), ("fast_sigmoid", surrogate.fast_sigmoid())])
def test_bptt_gradients_equal_snntorch_through_50_steps(reset, kind, ref):
    """Gradients of a loss on the whole spike train w.r.t. the input currents and a learned β."""
    x = currents(2)
    w = torch.randn(T, B, F, generator=torch.Generator().manual_seed(4))
    x_lf, x_ref = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    module = LIF.model_validate({"type": "lif", "beta": 0.85, "learn_beta": True, "reset": reset,
                                 "surrogate": kind}).build([(F,)], steps=T)
    ref_neuron = snn.Leaky(beta=torch.tensor(0.85), learn_beta=True, reset_mechanism=reset, spike_grad=ref)
    spk = module(x_lf.flatten(0, 1)).unflatten(0, (T, -1))
    ref_spk, _ = run_snntorch(ref_neuron, x_ref)
    (spk * w).sum().backward()
    (ref_spk * w).sum().backward()
    assert x_lf.grad.abs().max() > 0.01
    torch.testing.assert_close(x_lf.grad, x_ref.grad, rtol=0, atol=1e-6)
    torch.testing.assert_close(module.beta.grad, ref_neuron.beta.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reset", ["subtract", "none"])
@pytest.mark.parametrize("feedback", ["all_to_all", "one_to_one"])
def test_rlif_traces_equal_snntorch_rleaky_over_50_steps(reset, feedback):
    x = currents(5)
    torch.manual_seed(0)
    if feedback == "all_to_all":
        ref = snn.RLeaky(beta=0.9, linear_features=F, reset_mechanism=reset)
    else:
        ref = snn.RLeaky(beta=0.9, all_to_all=False, V=torch.linspace(-0.5, 0.5, F), reset_mechanism=reset)
    ref_spk, ref_mem = run_snntorch(ref, x, recurrent=True)
    traces = []
    for output in ("spikes", "membrane"):
        module = RLIF.model_validate({"type": "rlif", "beta": 0.9, "reset": reset, "feedback": feedback,
                                      "output": output}).build([(F,)], steps=T)
        with torch.no_grad():
            if feedback == "all_to_all":
                module.recurrent.load_state_dict(ref.recurrent.state_dict())
            else:
                module.v.copy_(torch.linspace(-0.5, 0.5, F))
        traces.append(module(x.flatten(0, 1)).unflatten(0, (T, -1)))
    assert 0.05 < ref_spk.mean().item() < 0.95
    assert torch.equal(traces[0], ref_spk)
    assert torch.equal(traces[1], ref_mem)
