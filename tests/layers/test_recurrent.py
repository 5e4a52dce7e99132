"""simple_rnn, lstm, gru: parameter counts, return_sequences semantics (incl. bidirectional, checked
against manual runs of torch's modules), the documented cell formulas, FLOPs by hand, shape errors."""
from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from layerforge.errors import ShapeError, SpecError
from layerforge.layers import get_layer_type
from layerforge.build import load as spec_from_dict

TYPES = ["simple_rnn", "lstm", "gru"]
TORCH = {"simple_rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def make(type_: str, **kw):
    return get_layer_type(type_).model_validate({"type": type_, **kw})


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- parameters -------------------------------------------------------------------------------
def test_lstm_32_to_64_has_torch_parameter_count():
    assert n_params(make("lstm", units=64).build([(10, 32)])) == 25_088  # 4·64·(32+64) + 8·64


def test_gru_32_to_64_has_torch_parameter_count():
    assert n_params(make("gru", units=64).build([(10, 32)])) == 18_816  # 3·64·(32+64) + 6·64


def test_simple_rnn_parameter_count_counts_two_biases():
    assert n_params(make("simple_rnn", units=8).build([(5, 4)])) == 8 * 4 + 8 * 8 + 2 * 8


def test_stacked_bidirectional_layers_read_both_directions():
    # layer 0: 2 dirs · (4·H·(F+H) + 8H); layer 1 reads 2H features
    h, f = 6, 5
    expected = 2 * (4 * h * (f + h) + 8 * h) + 2 * (4 * h * (2 * h + h) + 8 * h)
    assert n_params(make("lstm", units=h, num_layers=2, bidirectional=True).build([(7, f)])) == expected


# --- shapes and return_sequences ---------------------------------------------------------------
@pytest.mark.parametrize("type_", TYPES)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_output_shape_matches_the_built_module(type_, bidirectional, return_sequences):
    layer = make(type_, units=5, bidirectional=bidirectional, return_sequences=return_sequences)
    out = layer.output_shape([(7, 3)])
    width = 10 if bidirectional else 5
    assert out == ((7, width) if return_sequences else (width,))
    y = layer.build([(7, 3)])(torch.randn(2, 7, 3))
    assert tuple(y.shape) == (2, *out)


@pytest.mark.parametrize("type_", TYPES)
def test_last_step_is_the_final_hidden_state(type_):
    torch.manual_seed(0)
    module = make(type_, units=4, num_layers=2).build([(6, 3)]).eval()
    x = torch.randn(2, 6, 3)
    out, state = module.rnn(x)
    h_n = state[0] if type_ == "lstm" else state
    y = module(x)
    assert torch.equal(y, out[:, -1])
    assert torch.allclose(y, h_n[-1])


@pytest.mark.parametrize("type_", TYPES)
def test_bidirectional_last_step_is_forward_last_and_backward_first_like_keras(type_):
    """Keras Bidirectional(return_sequences=False): the forward RNN's output after step T−1 joined with
    the backward RNN's output after it has read back to t=0. Rebuild the backward RNN as a separate
    forward-only torch module with the *_reverse weights, run it on the time-reversed input."""
    torch.manual_seed(0)
    module = make(type_, units=4, bidirectional=True).build([(6, 3)]).eval()
    x = torch.randn(2, 6, 3)
    y = module(x)  # (2, 8)

    fwd, bwd = TORCH[type_](3, 4, batch_first=True), TORCH[type_](3, 4, batch_first=True)
    with torch.no_grad():
        for name, p in module.rnn.named_parameters():
            target = bwd if name.endswith("_reverse") else fwd
            getattr(target, name.removesuffix("_reverse")).copy_(p)
    fwd_out, _ = fwd(x)
    bwd_out, _ = bwd(x.flip(1))  # bwd_out[:, -1] is the backward direction's state at t=0
    assert torch.allclose(y, torch.cat([fwd_out[:, -1], bwd_out[:, -1]], dim=-1), atol=1e-6)
    # ... which is NOT simply the last step of the concatenated sequence
    seq, _ = module.rnn(x)
    assert not torch.allclose(y, seq[:, -1])


@pytest.mark.parametrize("type_", TYPES)
def test_bidirectional_stacked_last_step_equals_top_layer_final_states(type_):
    torch.manual_seed(0)
    module = make(type_, units=3, num_layers=2, bidirectional=True).build([(5, 2)]).eval()
    x = torch.randn(4, 5, 2)
    _, state = module.rnn(x)
    h_n = state[0] if type_ == "lstm" else state  # (layers·2, B, H)
    assert torch.allclose(module(x), torch.cat([h_n[-2], h_n[-1]], dim=-1), atol=1e-6)


def test_return_sequences_returns_torch_output_unchanged():
    torch.manual_seed(0)
    module = make("gru", units=4, bidirectional=True, return_sequences=True).build([(6, 3)])
    x = torch.randn(2, 6, 3)
    assert torch.equal(module(x), module.rnn(x)[0])


def test_dropout_goes_between_stacked_torch_layers():
    module = make("lstm", units=4, num_layers=3, dropout=0.25).build([(6, 3)])
    assert module.rnn.dropout == 0.25 and module.rnn.num_layers == 3 and module.rnn.batch_first


def test_dropout_without_stacking_is_refused():
    with pytest.raises(ValidationError, match="num_layers"):
        make("lstm", units=4, dropout=0.2)


def test_simple_rnn_relu_uses_relu():
    module = make("simple_rnn", units=4, activation="relu").build([(6, 3)])
    assert module.rnn.nonlinearity == "relu"
    assert (module(torch.randn(2, 6, 3)) >= 0).all()


# --- the documented cell formulas are torch's ---------------------------------------------------
def test_lstm_matches_the_documented_formula():
    torch.manual_seed(0)
    module = make("lstm", units=3).build([(4, 2)]).eval()
    r = module.rnn
    x = torch.randn(1, 4, 2)
    h = c = torch.zeros(3)
    wi, wh, bi, bh = (t.chunk(4) for t in (r.weight_ih_l0, r.weight_hh_l0, r.bias_ih_l0, r.bias_hh_l0))
    for t in range(4):
        pre = [wi[k] @ x[0, t] + bi[k] + wh[k] @ h + bh[k] for k in range(4)]
        i, f, g, o = torch.sigmoid(pre[0]), torch.sigmoid(pre[1]), torch.tanh(pre[2]), torch.sigmoid(pre[3])
        c = f * c + i * g
        h = o * torch.tanh(c)
    assert torch.allclose(module(x)[0], h, atol=1e-6)


def test_gru_matches_the_documented_formula_with_reset_after_the_matmul():
    torch.manual_seed(0)
    module = make("gru", units=3).build([(4, 2)]).eval()
    r_ = module.rnn
    x = torch.randn(1, 4, 2)
    h = torch.zeros(3)
    wi, wh, bi, bh = (t.chunk(3) for t in (r_.weight_ih_l0, r_.weight_hh_l0, r_.bias_ih_l0, r_.bias_hh_l0))
    for t in range(4):
        r = torch.sigmoid(wi[0] @ x[0, t] + bi[0] + wh[0] @ h + bh[0])
        z = torch.sigmoid(wi[1] @ x[0, t] + bi[1] + wh[1] @ h + bh[1])
        n = torch.tanh(wi[2] @ x[0, t] + bi[2] + r * (wh[2] @ h + bh[2]))
        h = (1 - z) * n + z * h
    assert torch.allclose(module(x)[0], h, atol=1e-6)


def test_simple_rnn_matches_the_documented_formula():
    torch.manual_seed(0)
    module = make("simple_rnn", units=3).build([(4, 2)]).eval()
    r = module.rnn
    x = torch.randn(1, 4, 2)
    h = torch.zeros(3)
    for t in range(4):
        h = torch.tanh(r.weight_ih_l0 @ x[0, t] + r.bias_ih_l0 + r.weight_hh_l0 @ h + r.bias_hh_l0)
    assert torch.allclose(module(x)[0], h, atol=1e-6)


# --- FLOPs by hand ------------------------------------------------------------------------------
def _flops(layer, in_shape):
    return layer.flops([in_shape], layer.output_shape([in_shape]))


def test_lstm_flops_by_hand():
    # F=3, H=2, T=4, one step:
    #   W_ih·x 2·3·8 = 48, W_hh·h 2·2·8 = 32, biases 2·8 = 16, adding the halves 8, 3σ+tanh 8,
    #   f⊙c 2 + i⊙g 2 + sum 2 = 6, tanh(c) 2, o⊙ 2                      → 122 per step
    assert _flops(make("lstm", units=2), (4, 3)) == 4 * (48 + 32 + 16 + 8 + 8 + 6 + 2 + 2) == 488


def test_gru_flops_by_hand_stacked_bidirectional():
    # H=3, T=2, 2 directions. One step reading F features:
    #   matmuls 2·F·9 + 2·3·9 = 18F + 54, biases 18, adding halves of r, z, n 9, 2σ+tanh 9,
    #   r⊙(…) 3, (1−z) 3, ⊙n 3, z⊙h 3, sum 3                              → 18F + 54 + 51
    layer0 = 18 * 5 + 54 + 51  # F = 5 (input)          = 195
    layer1 = 18 * 6 + 54 + 51  # F = 6 (2 directions·3) = 213
    assert layer0 == 195 and layer1 == 213
    layer = make("gru", units=3, num_layers=2, bidirectional=True)
    assert _flops(layer, (2, 5)) == 2 * 2 * (195 + 213) == 1632


def test_simple_rnn_flops_by_hand():
    # F=4, H=3, T=5, one step: 2·4·3 = 24, 2·3·3 = 18, biases 6, add 3, relu 3 → 54
    assert _flops(make("simple_rnn", units=3, activation="relu"), (5, 4)) == 5 * 54 == 270


def test_return_sequences_does_not_change_flops():
    a, b = make("lstm", units=8), make("lstm", units=8, return_sequences=True)
    assert _flops(a, (6, 4)) == _flops(b, (6, 4))


# --- shape errors -------------------------------------------------------------------------------
@pytest.mark.parametrize("type_", TYPES)
def test_image_input_is_refused_with_a_reshape_hint(type_):
    with pytest.raises(ShapeError) as e:
        make(type_, units=4).output_shape([(1, 8, 8)])
    assert e.value.message == f"{type_} needs a sequence (T, F), got (1, 8, 8)"
    assert "reshape" in e.value.hint and "(8, 8)" in e.value.hint


def test_flat_vector_is_refused():
    with pytest.raises(ShapeError, match=r"needs a sequence \(T, F\), got \(16,\)"):
        make("gru", units=4).output_shape([(16,)])


def test_spec_with_lstm_on_an_image_is_a_located_spec_error():
    spec = {"model": {"input_shape": [1, 8, 8], "layers": [{"type": "lstm", "units": 4}]}}
    with pytest.raises(SpecError) as e:
        spec_from_dict(spec)
    (issue,) = e.value.issues
    assert "lstm needs a sequence (T, F), got (1, 8, 8)" in issue.message
    assert issue.path == ("model", "layers", 0) and issue.hint


# --- GPU (skipped without CUDA) -----------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.parametrize("type_", TYPES)
def test_cudnn_run_matches_cpu(type_, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.manual_seed(0)
    module = make(type_, units=16, num_layers=2, bidirectional=True).build([(9, 8)]).eval()
    x = torch.randn(3, 9, 8)
    expected = module(x)
    y = module.cuda()(x.cuda())
    assert torch.allclose(y.cpu(), expected, atol=1e-4)
