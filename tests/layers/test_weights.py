"""Keras initializers on the layers with weights (layers/weights.py): the drawn tensors against the analytic
variance and bounds of Keras 3's VarianceScaling (with Keras' fans for each kernel layout), exact constant
initializers, orthogonality, the recurrent bias conventions, seeding, and PyTorch's default when absent.

Tolerances: the variance tests draw >= 9,000 numbers, so the sample variance's relative standard error is
at most sqrt(2/n) ~ 1.5 % (normal; less for uniform); 6 % is four of those, and a wrong fan (a factor of
at least 2 in these shapes) is far outside it."""
from __future__ import annotations

import math

import pytest
import torch

import layerforge as lf
from layerforge.errors import SpecError


def _layer(layer: dict, input_shape: list[int], seed: int = 0) -> torch.nn.Module:
    model = lf.build_model({"seed": seed, "model": {"input_shape": input_shape, "layers": [{"name": "x", **layer}]}})
    return model.layers["x"]


# (layer, input shape, role's parameter path, Keras fan_in, fan_out)
SHAPES = {
    "dense": ({"type": "dense", "units": 300}, [200], "weight", 200, 300),
    "conv2d": ({"type": "conv2d", "filters": 64, "kernel_size": 3}, [32, 8, 8], "weight", 32 * 9, 64 * 9),
    "conv1d_grouped": ({"type": "conv1d", "filters": 128, "kernel_size": 5, "groups": 4}, [64, 20], "weight",
                       16 * 5, 128 * 5),
    "depthwise": ({"type": "depthwise_conv2d", "kernel_size": 3, "depth_multiplier": 4}, [256, 6, 6], "weight",
                  256 * 9, 4 * 9),
    "transpose": ({"type": "conv2d_transpose", "filters": 48, "kernel_size": 3}, [64, 5, 5], "weight", 48 * 9, 64 * 9),
    "embedding": ({"type": "embedding", "input_dim": 1000, "output_dim": 64}, [7], "weight", 1000, 64),
    "lstm_kernel": ({"type": "lstm", "units": 64}, [5, 100], "rnn.weight_ih_l0", 100, 256),
}
VARIANCE = {  # name: (variance from (fan_in, fan_out), uniform?)
    "glorot_uniform": (lambda i, o: 2 / (i + o), True), "glorot_normal": (lambda i, o: 2 / (i + o), False),
    "he_uniform": (lambda i, o: 2 / i, True), "he_normal": (lambda i, o: 2 / i, False),
    "lecun_uniform": (lambda i, o: 1 / i, True), "lecun_normal": (lambda i, o: 1 / i, False),
}


def _role_field(layer: dict) -> str:
    return {"depthwise_conv2d": "depthwise_initializer", "embedding": "embeddings_initializer"}.get(
        layer["type"], "kernel_initializer")


CASES = [(where, name) for i, where in enumerate(SHAPES)  # each layout with a uniform and a normal, fans varied
         for name in (("glorot_uniform", "he_normal"), ("he_uniform", "lecun_normal"))[i % 2]]


@pytest.mark.parametrize("where,name", CASES)
def test_variance_scaling_matches_keras_fans_and_bounds(where, name):
    layer, shape, path, fan_in, fan_out = SHAPES[where]
    w = _layer({**layer, _role_field(layer): name}, shape).get_parameter(path).detach().double()
    var_fn, uniform = VARIANCE[name]
    var = var_fn(fan_in, fan_out)
    assert w.numel() >= 9000
    assert w.var().item() == pytest.approx(var, rel=0.06)
    assert abs(w.mean().item()) < 4 * math.sqrt(var / w.numel())
    if uniform:
        assert w.abs().max().item() <= math.sqrt(3 * var) + 1e-7
    else:  # Keras' truncated normal: std sqrt(var)/0.8796, cut at two of those
        assert w.abs().max().item() <= 2 * math.sqrt(var) / 0.87962566103423978 + 1e-7


def test_glorot_normal_and_variance_scaling_options():
    w = _layer({"type": "dense", "units": 300, "kernel_initializer": "glorot_normal"}, [200]).weight.detach()
    assert w.var().item() == pytest.approx(2 / 500, rel=0.06)
    vs = {"name": "variance_scaling", "scale": 3.0, "mode": "fan_out", "distribution": "untruncated_normal"}
    w = _layer({"type": "dense", "units": 300, "kernel_initializer": vs}, [200]).weight.detach()
    assert w.var().item() == pytest.approx(3 / 300, rel=0.06)
    assert w.abs().max().item() > 2 * math.sqrt(3 / 300)  # untruncated: beyond two std devs somewhere in 60,000


@pytest.mark.parametrize("init,check", [
    ({"name": "random_normal", "mean": 1.0, "stddev": 0.2}, lambda w: (w.mean() - 1).abs() < 0.01 and (w.std() - 0.2).abs() < 0.01),
    ("random_uniform", lambda w: w.min() >= -0.05 and w.max() <= 0.05 and (w.var() - 0.1 ** 2 / 12).abs() < 1e-4),
    ({"name": "truncated_normal", "stddev": 0.1}, lambda w: w.abs().max() <= 0.2 and (w.std() - 0.1 * 0.8796).abs() < 0.005),
])
def test_random_initializers_follow_their_arguments(init, check):
    w = _layer({"type": "dense", "units": 200, "kernel_initializer": init}, [100]).weight.detach()
    assert bool(check(w))


def test_constant_initializers_are_exact():
    m = _layer({"type": "conv2d", "filters": 4, "kernel_size": 3, "kernel_initializer": {"name": "constant", "value": 0.5},
                "bias_initializer": "ones"}, [2, 5, 5])
    assert torch.equal(m.weight, torch.full_like(m.weight, 0.5)) and torch.equal(m.bias, torch.ones(4))
    m = _layer({"type": "dense", "units": 3, "kernel_initializer": "zeros", "bias_initializer": "zeros"}, [4])
    assert not m.weight.any() and not m.bias.any()


def test_orthogonal_and_identity():
    w = _layer({"type": "dense", "units": 40, "kernel_initializer": {"name": "orthogonal", "gain": 2.0}}, [100]).weight
    assert torch.allclose(w @ w.T, 4 * torch.eye(40), atol=1e-5)  # (40, 100): orthonormal rows, times gain²
    rnn = _layer({"type": "lstm", "units": 16, "recurrent_initializer": "orthogonal"}, [5, 8]).rnn
    w_hh = rnn.weight_hh_l0  # (4H, H): Keras' recurrent kernel (H, 4H) transposed, orthonormal columns
    assert torch.allclose(w_hh.T @ w_hh, torch.eye(16), atol=1e-5)
    w = _layer({"type": "dense", "units": 5, "kernel_initializer": "identity"}, [5]).weight
    assert torch.equal(w, torch.eye(5))


def test_identity_on_a_convolution_is_a_located_spec_error():
    spec = {"model": {"input_shape": [2, 5, 5], "layers": [
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "kernel_initializer": "identity"}]}}
    with pytest.raises(SpecError) as e:
        lf.build_model(spec)
    issue = e.value.issues[0]
    assert issue.path[:3] == ("model", "layers", 0) and "identity needs a 2-D tensor" in issue.message


@pytest.mark.parametrize("bad,words", [
    ({"name": "random_normal", "minval": 1}, "random_normal takes mean, stddev, got minval"),
    ("he_nrmal", "Input should be"), ({"name": "random_uniform", "minval": 1, "maxval": 0}, "minval < maxval"),
])
def test_bad_initializers_name_the_key(bad, words):
    spec = {"model": {"input_shape": [3], "layers": [{"type": "dense", "units": 2, "kernel_initializer": bad}]}}
    with pytest.raises(SpecError) as e:
        lf.build_model(spec)
    assert words in e.value.issues[0].message
    assert e.value.issues[0].path[:4] == ("model", "layers", 0, "kernel_initializer")


def test_recurrent_bias_follows_keras_single_bias():
    rnn = _layer({"type": "lstm", "units": 4, "bias_initializer": "ones"}, [3, 2]).rnn
    assert torch.equal(rnn.bias_ih_l0, torch.ones(16)) and not rnn.bias_hh_l0.any()  # b_ih + b_hh = Keras' bias
    rnn = _layer({"type": "lstm", "units": 4, "bias_initializer": {"name": "constant", "value": 0.3},
                  "unit_forget_bias": True}, [3, 2]).rnn
    want = torch.full((16,), 0.3)
    want[4:8] = 1.0  # the forget gate (torch's order i, f, g, o)
    assert torch.allclose(rnn.bias_ih_l0, want) and not rnn.bias_hh_l0.any()
    gru = _layer({"type": "gru", "units": 4, "bias_initializer": "ones"}, [3, 2]).rnn  # reset_after: two biases, as Keras
    assert torch.equal(gru.bias_ih_l0, torch.ones(12)) and torch.equal(gru.bias_hh_l0, torch.ones(12))


def test_same_seed_same_weights_and_absent_options_keep_pytorch_defaults():
    layer = {"type": "dense", "units": 8, "kernel_initializer": "he_normal", "bias_initializer": "random_normal"}
    a, b, c = _layer(layer, [6], seed=3), _layer(layer, [6], seed=3), _layer(layer, [6], seed=4)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias) and not torch.equal(a.weight, c.weight)
    plain = _layer({"type": "dense", "units": 8}, [6], seed=3)
    torch.manual_seed(3)
    ref = torch.nn.Linear(6, 8)
    assert torch.equal(plain.weight, ref.weight) and torch.equal(plain.bias, ref.bias)


def test_separable_conv_has_keras_depthwise_and_pointwise_roles():
    m = _layer({"type": "separable_conv2d", "filters": 5, "kernel_size": 3, "depthwise_initializer": "ones",
                "pointwise_initializer": "zeros", "bias_initializer": {"name": "constant", "value": 2.0}}, [3, 6, 6])
    assert torch.equal(m[0].weight, torch.ones_like(m[0].weight)) and not m[1].weight.any()
    assert torch.equal(m[1].bias, torch.full((5,), 2.0))


# Keras 3 (dev dependency) draws from the same distributions: same kernel layout in Keras' order.
KERAS = [("GlorotUniform", (200, 300), ("dense", "glorot_uniform")), ("HeNormal", (3, 3, 32, 64), ("conv2d", "he_normal")),
         ("LecunNormal", (1000, 64), ("embedding", "lecun_normal")),
         ("HeUniform", (3, 3, 256, 4), ("depthwise", "he_uniform"))]


@pytest.mark.parametrize("cls,shape,ours", KERAS, ids=[k[0] for k in KERAS])
def test_variance_matches_keras_3(cls, shape, ours, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    theirs = torch.as_tensor(getattr(keras.initializers, cls)(seed=0)(shape)).detach().cpu().double()
    where, name = ours
    layer, shape_in, path, _, _ = SHAPES[where]
    w = _layer({**layer, _role_field(layer): name}, shape_in).get_parameter(path).detach().double()
    assert w.var().item() == pytest.approx(theirs.var().item(), rel=0.08)
    assert w.abs().max().item() <= theirs.abs().max().item() * 1.05 + 1e-6


def test_a_wrapped_layer_keeps_its_weight_options():
    model = lf.build_model({"model": {"input_shape": [4, 3], "layers": [
        {"type": "time_distributed", "name": "td", "layer": {"type": "dense", "units": 2, "kernel_initializer": "ones",
                                                              "kernel_regularizer": {"l1": 0.5}}},
        {"type": "time_distributed", "layer": {"type": "batchnorm", "trainable": False}}]}})
    assert torch.equal(model.layers["td"].layer.weight, torch.ones(2, 3))
    assert model.regularization_loss().item() == pytest.approx(0.5 * 6)
    bn = model.layers["time_distributed_1"].layer
    model.train()
    assert not bn.training and not any(p.requires_grad for p in bn.parameters())


def test_the_editor_schema_offers_the_new_keys():
    import json

    from layerforge.spec.jsonschema import spec_json_schema

    text = json.dumps(spec_json_schema())
    for key in ("init_from", "trainable", "kernel_initializer", "recurrent_regularizer", "embeddings_initializer",
                "depthwise_initializer", "he_normal"):
        assert f'"{key}"' in text, key
