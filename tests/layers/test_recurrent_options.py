"""Recurrent options: go_backwards, merge_mode, use_bias, unit_forget_bias, activation /
recurrent_activation, GRU reset_after: false, recurrent_dropout. Checked against torch's fused modules
(the step loop with default options), a hand-written loop, Keras 3 on its torch backend with the same
weights (1e-5), and FLOP counts by hand."""
from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from layerforge.layers import get_layer_type

os.environ.setdefault("KERAS_BACKEND", "torch")


def make(type_: str, **kw):
    return get_layer_type(type_).model_validate({"type": type_, **kw})


def batch(b: int = 3, t: int = 6, f: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, f, generator=g)
    lengths = torch.tensor([t, 2, 4][:b])
    return x, torch.arange(t)[None, :] < lengths[:, None]


DEFAULT_LOOP = {"activation": "tanh", "recurrent_activation": "sigmoid", "reset_after": True, "recurrent_dropout": 0.0}


@pytest.mark.parametrize("type_,kw", [
    ("simple_rnn", {"num_layers": 2}), ("lstm", {"bidirectional": True, "return_sequences": True}),
    ("gru", {"bidirectional": True, "num_layers": 2}), ("lstm", {"go_backwards": True, "use_bias": False}),
])
def test_step_loop_with_default_options_equals_the_fused_kernel(type_, kw):
    m = make(type_, units=3, **kw).build([(6, 4)]).eval()
    x, mask = batch()
    with torch.no_grad():
        fused, fused_masked = m(x), m(x, masks=[mask])
        m.loop = {"kind": type_, **DEFAULT_LOOP}
        torch.testing.assert_close(m(x), fused, rtol=0, atol=1e-6)
        torch.testing.assert_close(m(x, masks=[mask]), fused_masked, rtol=0, atol=1e-6)


def test_fused_kernel_is_kept_unless_an_option_needs_the_loop():
    assert make("lstm", units=2).loop_options() is None
    assert make("simple_rnn", units=2, activation="relu").loop_options() is None
    assert make("gru", units=2, reset_after=False).loop_options()["reset_after"] is False
    assert make("lstm", units=2, recurrent_activation="hard_sigmoid").loop_options() is not None


def test_go_backwards_reads_the_reversed_sequence():
    fwd = make("gru", units=3).build([(6, 4)]).eval()
    back = make("gru", units=3, go_backwards=True).build([(6, 4)]).eval()
    back.load_state_dict(fwd.state_dict())
    x, mask = batch()
    with torch.no_grad():
        torch.testing.assert_close(back(x), fwd(x.flip(1)), rtol=0, atol=1e-6)
        torch.testing.assert_close(back(x, masks=[mask])[1], fwd(x[1:2, :2].flip(1))[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode", ["sum", "mul", "ave"])
def test_merge_mode_joins_the_two_directions(mode):
    cat = make("lstm", units=3, bidirectional=True, return_sequences=True).build([(6, 4)]).eval()
    m = make("lstm", units=3, bidirectional=True, return_sequences=True, merge_mode=mode).build([(6, 4)]).eval()
    m.load_state_dict(cat.state_dict())
    x, _ = batch()
    with torch.no_grad():
        a, b = cat(x)[..., :3], cat(x)[..., 3:]
        want = {"sum": a + b, "mul": a * b, "ave": (a + b) / 2}[mode]
        torch.testing.assert_close(m(x), want)
    assert make("lstm", units=3, bidirectional=True, merge_mode=mode).output_shape([(6, 4)]) == (3,)


def test_use_bias_false_has_no_bias_and_unit_forget_bias_sets_keras_init():
    assert not any("bias" in n for n, _ in make("gru", units=3, use_bias=False).build([(5, 2)]).named_parameters())
    rnn = make("lstm", units=2, unit_forget_bias=True, num_layers=2).build([(5, 2)]).rnn
    assert rnn.bias_ih_l1.tolist() == [0, 0, 1, 1, 0, 0, 0, 0] and rnn.bias_hh_l1.abs().sum() == 0


def test_option_conflicts_are_refused():
    for kw in ({"merge_mode": "sum"}, {"go_backwards": True, "bidirectional": True},
               {"unit_forget_bias": True, "use_bias": False}):
        with pytest.raises(ValidationError):
            make("lstm", units=2, **kw)


def test_recurrent_dropout_applies_one_mask_to_h_at_every_step():
    """Hand-written loop: h_t = tanh(W x_t + b + W_hh (h_{t-1} ⊙ keep) + b_hh), keep drawn once."""
    m = make("simple_rnn", units=4, recurrent_dropout=0.5).build([(5, 3)]).train()
    x, _ = batch(2, 5, 3)
    torch.manual_seed(7)
    got = m(x)
    torch.manual_seed(7)
    keep = F.dropout(torch.ones(2, 4), 0.5)  # the module's first draw
    r, h = m.rnn, torch.zeros(2, 4)
    for t in range(5):
        h = torch.tanh(x[:, t] @ r.weight_ih_l0.T + r.bias_ih_l0 + (h * keep) @ r.weight_hh_l0.T + r.bias_hh_l0)
    torch.testing.assert_close(got, h)
    with torch.no_grad():
        ref = make("simple_rnn", units=4).build([(5, 3)]).eval()
        ref.load_state_dict(m.state_dict())
        torch.testing.assert_close(m.eval()(x), ref(x), rtol=0, atol=1e-6)  # no dropout when evaluating


def test_gru_reset_after_false_matches_a_hand_written_loop():
    m = make("gru", units=3, reset_after=False, activation="relu").build([(5, 2)]).eval()
    x, _ = batch(2, 5, 2)
    r, h = m.rnn, torch.zeros(2, 3)
    wr, wz, wn = r.weight_hh_l0.chunk(3)
    br, bz, bn = r.bias_hh_l0.chunk(3)
    for t in range(5):
        xr, xz, xn = (x[:, t] @ r.weight_ih_l0.T + r.bias_ih_l0).chunk(3, -1)
        rr, z = torch.sigmoid(xr + h @ wr.T + br), torch.sigmoid(xz + h @ wz.T + bz)
        h = (1 - z) * torch.relu(xn + (rr * h) @ wn.T + bn) + z * h
    with torch.no_grad():
        torch.testing.assert_close(m(x), h)


# --- Keras 3 with the same weights -------------------------------------------------------------
def keras_weights(type_: str, rnn, sfx: str = "_l0", reset_after: bool = True) -> list:
    """torch weights → Keras [kernel (F, G·H), recurrent_kernel (H, G·H), bias]; GRU gates r,z,n → z,r,h."""
    w_ih, w_hh = getattr(rnn, "weight_ih" + sfx).detach(), getattr(rnn, "weight_hh" + sfx).detach()
    b_ih = getattr(rnn, "bias_ih" + sfx).detach() if rnn.bias else None
    b_hh = getattr(rnn, "bias_hh" + sfx).detach() if rnn.bias else None
    if type_ == "gru":
        order = lambda w: torch.cat([w.chunk(3)[1], w.chunk(3)[0], w.chunk(3)[2]])  # noqa: E731
        w_ih, w_hh = order(w_ih), order(w_hh)
        b_ih, b_hh = (order(b_ih), order(b_hh)) if b_ih is not None else (None, None)
        if b_ih is not None and reset_after:
            return [w_ih.T.numpy(), w_hh.T.numpy(), torch.stack([b_ih, b_hh]).numpy()]
    out = [w_ih.T.numpy(), w_hh.T.numpy()]
    return out + ([(b_ih + b_hh).numpy()] if b_ih is not None else [])


KERAS_CASES = [
    ("lstm", {"activation": "relu", "recurrent_activation": "hard_sigmoid"}, {}),
    ("lstm", {"use_bias": False, "go_backwards": True, "return_sequences": True}, {}),
    ("gru", {"activation": "softsign"}, {}),
    ("gru", {"reset_after": False, "recurrent_activation": "hard_sigmoid"}, {}),
    ("simple_rnn", {"activation": "sigmoid", "go_backwards": True}, {}),
    ("lstm", {"bidirectional": True, "merge_mode": "ave"}, {}),
    ("gru", {"bidirectional": True, "merge_mode": "mul", "return_sequences": True}, {}),
]


@pytest.mark.parametrize("type_,kw,_", KERAS_CASES, ids=[f"{t}-{'-'.join(k)}" for t, k, _ in KERAS_CASES])
@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
def test_matches_keras_with_the_same_weights(type_, kw, _, masked):
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("Keras runs another backend in this process")
    layer = make(type_, units=3, **kw)
    m = layer.build([(6, 4)]).eval()
    if layer.reset_after is False if type_ == "gru" else False:
        with torch.no_grad():
            m.rnn.bias_hh_l0.zero_()  # Keras' reset_after=False GRU has the input bias only
    names = {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "SimpleRNN"}
    opts = {"return_sequences": layer.return_sequences, "use_bias": layer.use_bias,
            "activation": getattr(layer, "activation", "tanh")}
    if type_ != "simple_rnn":
        opts["recurrent_activation"] = layer.recurrent_activation
    if type_ == "gru":
        opts["reset_after"] = layer.reset_after
    cell = getattr(keras.layers, names[type_])
    x, mask = batch()
    x = x * mask[..., None] if masked else x  # padded steps are 0, which keras.layers.Masking marks
    if layer.bidirectional:
        k = keras.layers.Bidirectional(cell(3, **opts), merge_mode=layer.merge_mode)
        k.build((None, 6, 4))
        k.forward_layer.set_weights(keras_weights(type_, m.rnn))
        k.backward_layer.set_weights(keras_weights(type_, m.rnn, "_l0_reverse"))
    else:
        k = cell(3, go_backwards=layer.go_backwards, **opts)
        k.build((None, 6, 4))
        k.set_weights(keras_weights(type_, m.rnn, reset_after=getattr(layer, "reset_after", True)))
    with torch.no_grad():
        ours = m(x, masks=[mask] if masked else None)
        theirs = k(x, mask=mask if masked else None)
    theirs = torch.as_tensor(keras.ops.convert_to_numpy(theirs))
    if masked and layer.return_sequences:  # compare valid steps (Keras repeats / zeroes padded ones its own way)
        if layer.go_backwards:
            pytest.skip("Keras keeps a go_backwards sequence in padded, reversed order; compared unmasked")
        ours, theirs = ours[mask], theirs[mask]
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


# --- FLOPs by hand -----------------------------------------------------------------------------
def test_flops_of_the_options_by_hand():
    t, f, h = 4, 3, 2
    lstm_step = 8 * f * h + 8 * h * h + 21 * h  # docs: 8·F·H + 8·H² + 21·H
    assert make("lstm", units=h).flops([(t, f)], (h,)) == t * lstm_step
    assert make("lstm", units=h, use_bias=False).flops([(t, f)], (h,)) == t * (lstm_step - 8 * h)  # no 2·4H bias adds
    gru_step = 6 * f * h + 6 * h * h + 17 * h
    for kw in ({"reset_after": False}, {"activation": "relu", "recurrent_activation": "hard_sigmoid"},
               {"recurrent_dropout": 0.3}, {"go_backwards": True}):
        assert make("gru", units=h, **kw).flops([(t, f)], (h,)) == t * gru_step  # same count, other kernel
    bi = 2 * t * gru_step
    assert make("gru", units=h, bidirectional=True, merge_mode="sum").flops([(t, f)], (h,)) == bi + h
    assert make("gru", units=h, bidirectional=True, merge_mode="ave").flops([(t, f)], (h,)) == bi + 2 * h
    assert make("gru", units=h, bidirectional=True, merge_mode="mul", return_sequences=True).flops(
        [(t, f)], (t, h)) == bi + t * h
    rnn_step = 2 * f * h + 2 * h * h + 4 * h
    assert make("simple_rnn", units=h, use_bias=False).flops([(t, f)], (h,)) == t * (rnn_step - 2 * h)
