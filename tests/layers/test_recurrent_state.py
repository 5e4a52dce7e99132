"""Recurrent ``return_state`` (extra outputs 'enc:h', 'enc:c', ...) and initial states (inputs after the
sequence): against torch's nn.RNN/LSTM/GRU with the same weights (h_n, c_n, h0, c0), fused kernel and step
loop, masked batches against each sequence alone, Keras 3 (``return_state=True``, ``initial_state=``),
and the spec errors of the 'layer:key' references."""
from __future__ import annotations

import os
import textwrap

import pytest
import torch

import layerforge as lf
from layerforge.build import build as build_model
from layerforge.errors import SpecError
from layerforge.layers import get_layer_type

os.environ.setdefault("KERAS_BACKEND", "torch")

T, F, H = 6, 4, 3
DEFAULT_LOOP = {"activation": "tanh", "recurrent_activation": "sigmoid", "reset_after": True, "recurrent_dropout": 0.0}
TORCH = {"simple_rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def make(type_: str, **kw):
    return get_layer_type(type_).model_validate({"type": type_, "units": H, **kw})


def data(b: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, T, F, generator=g)
    lengths = torch.tensor([T, 2, 4, 1][:b])
    return x, torch.arange(T)[None, :] < lengths[:, None]


def initial(layer, b: int = 3, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, H, generator=g) for _ in layer.state_names()]


def reference(layer, module) -> torch.nn.RNNBase:
    """A plain torch module with the layer's weights."""
    ref = TORCH[layer.type](F, H, num_layers=layer.num_layers, bidirectional=layer.bidirectional, batch_first=True)
    ref.load_state_dict(module.rnn.state_dict())
    return ref.eval()


def torch_states(layer, st) -> list[torch.Tensor]:
    """torch's (h_n[, c_n]) (layers·dirs, B, H) as the layer's extra outputs: the last layer, h, c per direction."""
    dirs = 2 if layer.bidirectional else 1
    parts = list(st) if isinstance(st, tuple) else [st]
    return [p[-dirs:][d] for d in range(dirs) for p in parts]


CASES = [("simple_rnn", {}), ("lstm", {}), ("gru", {}), ("lstm", {"bidirectional": True}),
         ("gru", {"bidirectional": True, "return_sequences": True}), ("lstm", {"num_layers": 2})]
IDS = [f"{t}-{'-'.join(k) or 'plain'}" for t, k in CASES]


@pytest.mark.parametrize("path", ["fused", "loop"])
@pytest.mark.parametrize("type_,kw", CASES, ids=IDS)
def test_states_equal_torchs_h_n_and_c_n(type_, kw, path):
    layer = make(type_, return_state=True, **kw)
    m = layer.build([(T, F)]).eval()
    if path == "loop":
        m.loop = {"kind": type_, **DEFAULT_LOOP}
    x, _ = data()
    with torch.no_grad():
        y, *states = m(x)
        out, st = reference(layer, m)(x)
    assert len(states) == len(layer.state_names())
    for ours, theirs in zip(states, torch_states(layer, st)):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    torch.testing.assert_close(y, out if layer.return_sequences else torch.cat(states[:: len(layer.state_parts)], -1),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("path", ["fused", "loop"])
@pytest.mark.parametrize("type_,kw", [c for c in CASES if "num_layers" not in c[1]], ids=IDS[:-1])
def test_initial_state_is_torchs_h0_c0(type_, kw, path):
    layer = make(type_, return_state=True, **kw)
    m = layer.build([(T, F), *[(H,)] * len(layer.state_names())]).eval()
    if path == "loop":
        m.loop = {"kind": type_, **DEFAULT_LOOP}
    x, _ = data()
    init = initial(layer)
    per = len(layer.state_parts)
    dirs = 2 if layer.bidirectional else 1
    h0 = torch.stack([init[d * per] for d in range(dirs)])
    hx = (h0, torch.stack([init[d * per + 1] for d in range(dirs)])) if type_ == "lstm" else h0
    with torch.no_grad():
        y, *states = m(x, *init)
        out, st = reference(layer, m)(x, hx)
    for ours, theirs in zip(states, torch_states(layer, st)):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    if layer.return_sequences:
        torch.testing.assert_close(y, out, rtol=0, atol=1e-6)


def test_state_names_follow_keras_order():
    assert list(make("lstm", return_state=True, bidirectional=True).extra_outputs([(T, F)])) == [
        "h", "c", "h_backward", "c_backward"]
    assert list(make("gru", return_state=True).extra_outputs([(T, F)])) == ["h"]
    assert make("simple_rnn", return_state=True, bidirectional=True).extra_outputs([(T, F)]) == {
        "h": (H,), "h_backward": (H,)}
    assert make("lstm").extra_outputs([(T, F)]) == {}


MASKED = [("lstm", {}), ("gru", {"go_backwards": True}), ("lstm", {"bidirectional": True}),
          ("simple_rnn", {"return_sequences": True}), ("lstm", {"recurrent_activation": "hard_sigmoid"})]


@pytest.mark.parametrize("with_initial", [False, True], ids=["zero", "initial"])
@pytest.mark.parametrize("type_,kw", MASKED, ids=[f"{t}-{'-'.join(k) or 'plain'}" for t, k in MASKED])
def test_padded_batch_states_equal_each_sequence_alone(type_, kw, with_initial):
    layer = make(type_, return_state=True, **kw)
    n_init = len(layer.state_names()) if with_initial else 0
    m = layer.build([(T, F), *[(H,)] * n_init]).eval()
    x, mask = data(4)
    init = initial(layer, 4)[:n_init] if with_initial else []
    with torch.no_grad():
        _, *states = m(x, *init, masks=[mask, *[None] * n_init])
        for b, n in enumerate(mask.sum(1).tolist()):
            _, *alone = m(x[b : b + 1, :n], *[s[b : b + 1] for s in init])
            for ours, theirs in zip(states, alone):
                torch.testing.assert_close(ours[b : b + 1], theirs, rtol=0, atol=1e-6)


def test_an_empty_sequence_keeps_its_initial_state():
    layer = make("lstm", return_state=True)
    m = layer.build([(T, F), (H,), (H,)]).eval()
    x, _ = data(2)
    mask = torch.zeros(2, T, dtype=torch.bool)
    mask[0, :3] = True
    h0, c0 = initial(layer, 2)
    with torch.no_grad():
        y, h, c = m(x, h0, c0, masks=[mask, None, None])
    torch.testing.assert_close(h[1], h0[1])
    torch.testing.assert_close(c[1], c0[1])
    assert y[1].abs().sum() == 0


def test_recurrent_dropout_applies_to_the_initial_state_too():
    layer = make("gru", recurrent_dropout=0.5, return_state=True)
    m = layer.build([(T, F), (H,)]).train()
    x, _ = data()
    (h0,) = initial(layer)
    torch.manual_seed(0)
    _, h = m(x, h0)
    m.loop["recurrent_dropout"] = 0.0
    _, h_plain = m(x, h0)
    assert not torch.allclose(h, h_plain)  # the dropout mask acts from the first step on


# --- Keras 3 with the same weights -------------------------------------------------------------
KERAS = [("lstm", {}, False), ("gru", {}, True), ("simple_rnn", {"go_backwards": True}, True),
         ("lstm", {"bidirectional": True}, True), ("gru", {"activation": "softsign"}, False)]


@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
@pytest.mark.parametrize("type_,kw,with_initial", KERAS,
                         ids=[f"{t}-{'-'.join(k) or 'plain'}-{'init' if i else 'zero'}" for t, k, i in KERAS])
def test_matches_keras_return_state_and_initial_state(type_, kw, with_initial, masked):
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("Keras runs another backend in this process")
    from tests.layers.test_recurrent_options import keras_weights

    layer = make(type_, return_state=True, **kw)
    n_init = len(layer.state_names()) if with_initial else 0
    m = layer.build([(T, F), *[(H,)] * n_init]).eval()
    cell = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "simple_rnn": keras.layers.SimpleRNN}[type_]
    opts = {k: v for k, v in kw.items() if k in ("activation", "go_backwards")}
    x, mask = data(4)
    x = x * mask[..., None] if masked else x
    init = initial(layer, 4)[:n_init]
    if layer.bidirectional:
        k = keras.layers.Bidirectional(cell(H, return_state=True, **opts))
        k.build((None, T, F))
        k.forward_layer.set_weights(keras_weights(type_, m.rnn))
        k.backward_layer.set_weights(keras_weights(type_, m.rnn, "_l0_reverse"))
    else:
        k = cell(H, return_state=True, **opts)
        k.build((None, T, F))
        k.set_weights(keras_weights(type_, m.rnn))
    with torch.no_grad():
        ours = m(x, *init, masks=[mask, *[None] * n_init] if masked else None)
        theirs = k(x, initial_state=init or None, mask=mask if masked else None)
    theirs = [torch.as_tensor(keras.ops.convert_to_numpy(t)) for t in theirs]
    assert len(ours) == len(theirs)  # [output, h, c, h_backward, c_backward], Keras' order
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


# --- the graph: references, FLOPs, errors ------------------------------------------------------
SEQ2SEQ = {"model": {"input_shape": {"src": [T, F], "tgt": [5, 2]}, "layers": [
    {"type": "lstm", "name": "enc", "units": H, "return_state": True, "inputs": ["src"]},
    {"type": "lstm", "name": "dec", "units": H, "return_sequences": True, "inputs": ["tgt", "enc:h", "enc:c"]},
    {"type": "dense", "name": "out", "units": 2}], "outputs": ["out", "enc:c"]}}


def test_a_decoder_reads_the_encoders_states_as_its_initial_state():
    _, graph, net = build_model(SEQ2SEQ, seed=0)
    net.eval()
    src, tgt = torch.randn(2, T, F), torch.randn(2, 5, 2)
    with torch.no_grad():
        out, c = net(src, tgt)
        _, h, c_enc = net.layers["enc"](src)
        want = net.layers["out"](net.layers["dec"](tgt, h, c_enc))
    torch.testing.assert_close(out, want)
    torch.testing.assert_close(c, c_enc)
    assert graph.shape_of("enc:c") == (H,) and graph.producer("enc:h").name == "enc"


def test_return_state_leaves_flops_and_parameters_unchanged():
    plain = lf.summarize({"model": {"input_shape": [T, F], "layers": [{"type": "lstm", "units": H}]}})
    state = lf.summarize({"model": {"input_shape": [T, F], "layers": [{"type": "lstm", "units": H, "return_state": True}]}})
    assert (plain.flops, plain.total_params) == (state.flops, state.total_params)
    assert state.layers[0].extra_outputs == {"lstm_1:h": [1, H], "lstm_1:c": [1, H]}


def test_a_graph_without_extra_outputs_keeps_the_plain_loop():
    _, _, net = build_model({"model": {"input_shape": [T, F], "layers": [{"type": "lstm", "units": H}]}})
    assert net._chain and not net._general
    _, _, net = build_model(SEQ2SEQ)
    assert net._general and not net._masked


def test_block_layers_and_uses_are_renamed_in_references():
    spec = {"model": {"input_shape": [T, F], "blocks": {"enc": [
        {"type": "gru", "name": "rnn", "units": H, "return_state": True, "return_sequences": True},
        {"type": "dense", "name": "proj", "units": H, "inputs": ["rnn:h"]},
        {"type": "gru", "name": "last", "units": H, "return_state": True, "inputs": ["rnn", "rnn:h"]}]},
        "layers": [{"block": "enc", "name": "e"}, {"type": "add", "inputs": ["e:h", "e.0.proj"]}],
        "outputs": ["add_1", "e:h"]}}
    _, graph = lf.validate(spec)
    assert graph.node("e.0.proj").inputs == ["e.0.rnn:h"]
    assert graph.node("e.0.last").inputs == ["e.0.rnn", "e.0.rnn:h"]
    assert graph.node("add_1").inputs == ["e.0.last:h", "e.0.proj"] and graph.outputs == ["add_1", "e.0.last:h"]


def errors(yaml_text: str, tmp_path) -> list:
    p = tmp_path / "spec.yaml"
    p.write_text(textwrap.dedent(yaml_text))
    with pytest.raises(SpecError) as e:
        lf.validate(str(p))
    return e.value.issues


def spec_text(enc: str, dec_inputs: str, outputs: str = "") -> str:
    return f"""\
        model:
          input_shape: {{src: [{T}, {F}], tgt: [5, 2]}}
          layers:
            - {{type: {enc}, name: enc, units: {H}, inputs: [src]}}
            - {{type: lstm, name: dec, units: {H}, inputs: [{dec_inputs}]}}
        {outputs}"""


@pytest.mark.parametrize("enc,inputs,outputs,message,hint", [
    ("lstm, return_state: true", "tgt, enc:h, enc:cc", "", "layer 'enc' (lstm) has no output 'cc'", "did you mean 'enc:c'"),
    ("lstm", "tgt, enc:h, enc:c", "", "'enc:h' reads an extra output, but layer 'enc' (lstm) has none",
     "set return_state: true on 'enc'"),
    ("lstm, return_state: true", "tgt, src:h, enc:c", "", "'src' is a model input", "read 'src'"),
    ("lstm, return_state: true", "tgt, enk:h, enc:c", "", "unknown input 'enk:h'", "did you mean 'enc'"),
    ("lstm, return_state: true", "tgt, enc:h", "", "the initial state, 2 for this lstm (h, c), got 1", "enc:h, enc:c"),
    ("lstm, return_state: true", "tgt, enc:h, enc:c, enc", "", "2 for this lstm (h, c), got 3",
     "inputs: [<sequence>, enc:h, enc:c]"),
    ("lstm, return_state: true", "tgt", "  outputs: [dec, enc:x]", "layer 'enc' (lstm) has no output 'x'",
     "enc:h"),
])
def test_reference_errors_are_located_with_a_fix(tmp_path, enc, inputs, outputs, message, hint):
    (issue, *_) = errors(spec_text(enc, inputs, outputs), tmp_path)
    assert message in issue.message and hint in (issue.hint or ""), issue
    assert issue.line in (4, 5, 6)


def test_initial_state_shape_units_and_stacking_are_checked(tmp_path):
    text = spec_text("gru, return_state: true", "tgt, enc:h").replace("name: dec, units: 3", "name: dec, units: 5")
    (issue,) = errors(text.replace("type: lstm", "type: gru"), tmp_path)
    assert "each initial state must have shape (5,), the units; got h (3,)" in issue.message
    text = spec_text("gru, return_state: true", "tgt, enc:h").replace("name: dec,", "name: dec, num_layers: 2,")
    (issue,) = errors(text.replace("type: lstm", "type: gru"), tmp_path)
    assert "num_layers: 1" in issue.message and "separate layers" in issue.hint


def test_a_layer_name_with_the_separator_is_refused(tmp_path):
    (issue,) = errors(spec_text("lstm", "tgt").replace("name: enc,", "name: 'e:1',").replace("src]", "src]"), tmp_path)
    assert "contains ':'" in issue.message and issue.line == 4


def test_a_graph_with_extra_outputs_exports_to_pt2():
    from layerforge.export.program import trace

    _, _, net = build_model(SEQ2SEQ, seed=0)
    xs = (torch.randn(3, T, F), torch.randn(3, 5, 2))
    program = trace(net, xs, dynamic_batch=True)
    for got, want in zip(program.module()(*xs), net(*xs)):
        torch.testing.assert_close(got, want)
