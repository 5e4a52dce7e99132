"""The spiking family: encoders, LIF dynamics against hand-computed traces, the readout, the time axis
through the graph (shapes, FLOPs × T, located errors), no state leaking between calls, and learning
through T steps with a surrogate gradient that a dead (zero) one cannot."""
from __future__ import annotations

import pytest
import torch

import layerforge as lf
from layerforge.errors import SpecError
from layerforge.layers.spiking import LIF, SpikeEncode, SpikeReadout
from tests.helpers import run_cli, write_spec


def encoder(**params):
    return SpikeEncode.model_validate({"type": "spike_encode", **params}).build([(4,)])


def lif(steps: int, **params):
    return LIF.model_validate({"type": "lif", **params}).build([(1,)], steps=steps)


def spec(layers: list[dict], input_shape=(6,)) -> dict:
    return {"name": "snn", "seed": 0, "model": {"input_shape": list(input_shape), "layers": layers}}


# --- encoders ----------------------------------------------------------------------------------
def test_rate_coding_fires_with_the_input_as_probability():
    torch.manual_seed(0)
    x = torch.tensor([[0.0, 0.1, 0.5, 1.0]])
    s = encoder(mode="rate", steps=4000)(x)  # (T·B, 4) with B = 1
    assert s.shape == (4000, 4) and set(s.unique().tolist()) <= {0.0, 1.0}
    rate = s.mean(0)
    assert rate[0] == 0 and rate[3] == 1
    for p, r in zip((0.1, 0.5), rate[1:3].tolist()):
        assert abs(r - p) < 4 * (p * (1 - p) / 4000) ** 0.5


def test_rate_coding_draws_from_torchs_seeded_generator():
    x = torch.full((2, 4), 0.5)
    torch.manual_seed(1)
    a = encoder(mode="rate", steps=8)(x)
    torch.manual_seed(1)
    b = encoder(mode="rate", steps=8)(x)
    c = encoder(mode="rate", steps=8)(x)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_rate_coding_passes_the_gradient_straight_through_inside_the_clamp():
    x = torch.tensor([[0.2, 0.7, 1.5, -0.3]], requires_grad=True)
    encoder(mode="rate", steps=5)(x).sum().backward()
    assert x.grad.tolist() == [[5.0, 5.0, 0.0, 0.0]]  # d/dx Σ_t S[t] = T where 0 < x < 1, 0 where clamped


def test_gain_and_sigmoid_map_inputs_to_probabilities():
    x = torch.tensor([[0.0, 8.0, 16.0, 32.0]])
    assert encoder(mode="rate", gain=0.0625).probability(x).tolist() == [[0.0, 0.5, 1.0, 1.0]]
    z = torch.tensor([[-1.0, 0.0, 1.0, 2.0]])
    torch.testing.assert_close(encoder(mode="rate", normalize="sigmoid").probability(z), torch.sigmoid(z))


def test_latency_coding_fires_once_and_earlier_for_larger_inputs():
    x = torch.tensor([[0.0, 0.25, 0.5, 1.0]])
    s = encoder(mode="latency", steps=5)(x)  # spike at round(4·(1 − p)): never, 3, 2, 0
    assert s.sum(0).tolist() == [0.0, 1.0, 1.0, 1.0]
    assert s.argmax(0).tolist()[1:] == [3, 2, 0]


def test_direct_coding_repeats_the_input_time_major():
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    y = encoder(mode="direct", steps=3)(x)
    assert y.shape == (6, 4) and torch.equal(y.unflatten(0, (3, 2))[2], x)


def test_direct_coding_refuses_scaling_options():
    with pytest.raises(SpecError, match="direct coding passes the input unchanged"):
        lf.validate(spec([{"type": "spike_encode", "mode": "direct", "gain": 2.0}]))


# --- LIF ---------------------------------------------------------------------------------------
# β = 0.5, θ = 1, a constant input of 0.6 over 5 steps, computed by hand:
HAND = {
    "subtract": ([0.6, 0.9, 1.05, 0.125, 0.6625], [0, 0, 1, 0, 0]),  # U3 = 0.525 + 0.6 − 1
    "zero": ([0.6, 0.9, 1.05, 0.6, 0.9], [0, 0, 1, 0, 0]),  # U3 = 0.5·(1 − 1)·1.05 + 0.6
    "none": ([0.6, 0.9, 1.05, 1.125, 1.1625], [0, 0, 1, 1, 1]),
}


@pytest.mark.parametrize("reset", HAND)
def test_lif_membrane_and_spikes_match_a_hand_computed_trace(reset):
    x = torch.full((5, 1), 0.6)  # T = 5 steps of one sample, one neuron
    mem, spikes = HAND[reset]
    u = lif(5, beta=0.5, threshold=1.0, reset=reset, output="membrane")(x)
    s = lif(5, beta=0.5, threshold=1.0, reset=reset)(x)
    torch.testing.assert_close(u[:, 0], torch.tensor(mem))
    assert s[:, 0].tolist() == spikes


def test_lif_state_starts_at_zero_on_every_call_and_samples_do_not_mix():
    m = LIF.model_validate({"type": "lif", "beta": 0.9, "learn_beta": True}).build([(8,)], steps=6)
    x = torch.rand(6, 5, 8) * 0.8  # (T, B, F)
    first = m(x.flatten(0, 1))
    assert torch.equal(m(x.flatten(0, 1)), first)  # a second call does not continue the first
    alone = m(x[:, 2:3].flatten(0, 1))  # sample 2 on its own
    assert torch.equal(alone, first.unflatten(0, (6, 5))[:, 2])


def test_surrogate_none_gives_no_gradient_and_atan_does():
    x = torch.rand(8, 3, requires_grad=True)
    (lif(8, surrogate="none")(x) * torch.rand(8, 3)).sum().backward()
    assert torch.count_nonzero(x.grad) == 0
    x.grad = None
    (lif(8, surrogate="atan")(x) * torch.rand(8, 3)).sum().backward()
    assert torch.count_nonzero(x.grad) > 0


def test_readout_reduces_the_time_steps():
    x = torch.tensor([[1.0], [0.0], [3.0], [2.0]])  # T = 4 steps of one sample
    out = {r: SpikeReadout(type="spike_readout", reduce=r).build([(1,)], steps=4)(x).item()
           for r in ("mean", "sum", "max", "last")}
    assert out == {"mean": 1.5, "sum": 6.0, "max": 3.0, "last": 2.0}


# --- the time axis through the graph -----------------------------------------------------------
LAYERS = [{"type": "spike_encode", "steps": 4}, {"type": "dense", "units": 5}, {"type": "lif"},
          {"type": "spike_readout"}]


def test_graph_carries_the_steps_and_multiplies_flops_and_activations_by_them():
    s = lf.summarize(spec(LAYERS), batch_size=2)
    rows = {r.name: r for r in s.layers}
    assert [rows[n].steps for n in ("spike_encode_1", "dense_1", "lif_1", "spike_readout_1")] == [4, 4, 4, 1]
    assert rows["dense_1"].output_shape == [8, 5] and rows["spike_readout_1"].output_shape == [2, 5]
    assert rows["spike_encode_1"].flops == 2 * 6 * (4 + 1)  # T compares + the clamp per element
    assert rows["dense_1"].flops == 2 * 4 * (2 * 6 * 5 + 5)  # T × the dense layer's FLOPs
    assert rows["lif_1"].flops == 2 * 4 * 6 * 5  # 6 per neuron per step
    assert rows["spike_readout_1"].flops == 2 * 4 * 5
    assert s.activation_bytes == 2 * 4 * (6 + 4 * 6 + 4 * 5 + 4 * 5 + 5)  # input + T·(each output) + readout
    model = lf.build_model(spec(LAYERS))
    assert model(torch.rand(3, 6)).shape == (3, 5)


@pytest.mark.parametrize("layers,message", [
    ([{"type": "dense", "units": 5}, {"type": "lif"}], "runs over time steps, but its input carries none"),
    (LAYERS[:3], "still carries 4 time steps"),
    ([LAYERS[0], {"type": "spike_encode", "steps": 2}, *LAYERS[1:]], "already carries 4 time steps"),
    ([{"type": "spike_encode", "steps": 4, "name": "enc"}, {"type": "dense", "units": 6, "inputs": ["input"],
      "name": "plain"}, {"type": "add", "inputs": ["enc", "plain"]}, {"type": "spike_readout"}],
     "carry different numbers of time steps"),
    ([{"type": "reshape", "target_shape": [1, 2, 3]}, LAYERS[0], {"type": "rlif"}, {"type": "spike_readout"}],
     "feedback all_to_all needs one feature axis"),
])
def test_misplaced_spiking_layers_are_located_spec_errors(layers, message):
    with pytest.raises(SpecError, match=message) as e:
        lf.validate(spec(layers))
    assert e.value.issues[0].hint


def test_validate_cli_reports_a_lif_without_encoder_with_exit_code_2(tmp_path, capsys):
    p = write_spec(tmp_path, """
        name: x
        model:
          input_shape: [4]
          layers:
            - {type: dense, units: 3}
            - {type: lif}
        """)
    r = run_cli(capsys, "validate", str(p))
    assert r.code == 2 and "spec.yaml:6" in r.err and "spike_encode" in r.err and "Traceback" not in r.err


# --- learning through time ---------------------------------------------------------------------
@pytest.fixture
def one_thread():
    """Tiny models train faster on one thread (and do not fight other processes for the cores)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _train_xor(surrogate: str) -> tuple[float, torch.Tensor]:
    layers = [{"type": "spike_encode", "mode": "direct", "steps": 6}, {"type": "dense", "units": 8, "name": "hidden"},
              {"type": "lif", "surrogate": surrogate}, {"type": "dense", "units": 2},
              {"type": "lif", "output": "membrane", "reset": "none"}, {"type": "spike_readout"}]
    g = torch.Generator().manual_seed(0)
    x = torch.rand(256, 8, generator=g) * 2 - 1
    y = ((x[:, 0] * x[:, 1]) > 0).long()  # XOR of two signs among 8 inputs: the hidden layer must learn
    model = lf.build_model(spec(layers, (8,)))
    w0 = model.layers["hidden"].weight.detach().clone()
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(80):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    acc = (model(x).argmax(1) == y).float().mean().item()
    return acc, model.layers["hidden"].weight.detach() - w0


def test_a_spiking_net_learns_xor_through_time_that_a_dead_surrogate_cannot(one_thread):
    acc, moved = _train_xor("atan")
    dead_acc, dead_moved = _train_xor("none")
    assert acc >= 0.95
    assert torch.count_nonzero(dead_moved) == 0  # no gradient reaches the layer before the spikes
    assert dead_acc <= 0.75
