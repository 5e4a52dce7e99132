"""Keras' initializer and regularizer options on the norms (γ, β, batchnorm's moving statistics), prelu (α)
and the attention types' projections (layers/weights.py): each role reaches the right tensor, variance
scaling uses Keras' fans (α: compute_fans on its shape; attention: Keras 3.15's EinsumDense axes, i.e.
torch's Linear fans), penalties match a hand computation, frozen layers add none.

Tolerances as tests/layers/test_weights.py: >= 9,000 numbers drawn, 6 % on the sample variance."""
from __future__ import annotations

import math

import pytest
import torch

import layerforge as lf
from layerforge.errors import SpecError

TRUNC = 0.87962566103423978


def _model(layers: list[dict], input_shape: list[int], seed: int = 0):
    return lf.build_model({"seed": seed, "model": {"input_shape": input_shape, "layers": layers}})


def _layer(layer: dict, input_shape: list[int]) -> torch.nn.Module:
    return _model([{"name": "x", **layer}], input_shape).layers["x"]


CONST = {"name": "constant", "value": 0.5}


@pytest.mark.parametrize("layer,shape", [
    ({"type": "batchnorm"}, [4, 3]), ({"type": "layernorm"}, [3, 4]), ({"type": "group_norm", "groups": 2}, [4, 3]),
])
def test_norm_gamma_and_beta_take_their_initializers(layer, shape):
    m = _layer({**layer, "gamma_initializer": CONST, "beta_initializer": "ones"}, shape)
    assert torch.equal(m.weight, torch.full((4,), 0.5)) and torch.equal(m.bias, torch.ones(4))


def test_rms_norm_gamma_and_batchnorm_moving_statistics():
    assert not _layer({"type": "rms_norm", "gamma_initializer": "zeros"}, [3, 4]).weight.any()
    bn = _layer({"type": "batchnorm", "moving_mean_initializer": CONST,
                 "moving_variance_initializer": {"name": "constant", "value": 3.0}}, [4])
    assert torch.equal(bn.running_mean, torch.full((4,), 0.5)) and torch.equal(bn.running_var, torch.full((4,), 3.0))
    assert torch.equal(bn.weight, torch.ones(4)) and not bn.bias.any()  # untouched roles keep PyTorch's init
    bn.eval()  # inference uses the initialised statistics: (x − 0.5) / √(3 + ε)
    x = torch.randn(2, 4)
    assert torch.allclose(bn(x), (x - 0.5) / math.sqrt(3 + 1e-5), atol=1e-6)


@pytest.mark.parametrize("layer,words", [
    ({"type": "layernorm", "scale": False, "gamma_initializer": "ones"}, "gamma_initializer needs scale: true"),
    ({"type": "batchnorm", "center": False, "beta_regularizer": "l2"}, "beta_regularizer needs center: true"),
    ({"type": "prelu", "alpha_init": 0.1, "alpha_initializer": "zeros"}, "alpha_init or alpha_initializer"),
    ({"type": "layernorm", "gamma_initializer": "identity"}, "identity needs a 2-D tensor"),
])
def test_options_without_their_tensor_or_twice_are_located_errors(layer, words):
    with pytest.raises(SpecError) as e:
        _model([layer], [3, 4])
    assert words in e.value.issues[0].message and e.value.issues[0].path[:3] == ("model", "layers", 0)


# α of shape (40, 300): Keras fans (40, 300), torch's would be (300, 40); (8, 30, 40): receptive field 8.
@pytest.mark.parametrize("shape,fans,name", [([40, 300], (40, 300), "he_uniform"),
                                             ([8, 30, 40], (240, 320), "glorot_normal")])
def test_prelu_alpha_uses_keras_fans_on_its_shape(shape, fans, name):
    w = _layer({"type": "prelu", "alpha_initializer": name}, shape).weight.detach().double()
    fan_in, fan_out = fans
    var = 2 / fan_in if name == "he_uniform" else 2 / (fan_in + fan_out)
    assert w.var().item() == pytest.approx(var, rel=0.06)
    bound = math.sqrt(3 * var) if name == "he_uniform" else 2 * math.sqrt(var) / TRUNC
    assert w.abs().max().item() <= bound + 1e-7
    assert not _layer({"type": "prelu", "alpha_initializer": "zeros"}, [3]).weight.any()  # Keras' default


MHA = {"type": "multi_head_attention", "num_heads": 4, "key_dim": 64, "value_dim": 32, "output_dim": 80}
# input (5, 96): (torch parameter, fan_in, fan_out) = Keras 3.15 EinsumDense fans from the einsum's axes
MHA_FANS = [("query.weight", 96, 256), ("value.weight", 96, 128), ("output.weight", 128, 80)]


def test_attention_projections_use_keras_einsum_fans():
    m = _layer({**MHA, "kernel_initializer": "glorot_uniform", "bias_initializer": CONST}, [5, 96])
    for path, fan_in, fan_out in MHA_FANS:
        w = m.get_parameter(path).detach().double()
        var = 2 / (fan_in + fan_out)
        assert w.var().item() == pytest.approx(var, rel=0.06), path
        assert w.abs().max().item() <= math.sqrt(3 * var) + 1e-7, path
    for p in ("query", "key", "value", "output"):
        assert torch.equal(m.get_parameter(f"{p}.bias"), torch.full_like(m.get_parameter(f"{p}.bias"), 0.5))


def test_attention_fans_match_keras_3(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    import numpy as np

    k = keras.layers.MultiHeadAttention(4, 64, value_dim=32, output_shape=80, kernel_initializer="he_uniform")
    x = np.zeros((1, 5, 96), "float32")
    k(x, x)
    ours = _layer({**MHA, "kernel_initializer": "he_uniform"}, [5, 96])
    for (path, _, _), dense in zip(MHA_FANS, (k._query_dense, k._value_dense, k._output_dense)):
        theirs = torch.as_tensor(keras.ops.convert_to_numpy(dense.kernel)).double()
        w = ours.get_parameter(path).detach().double()
        assert w.var().item() == pytest.approx(theirs.var().item(), rel=0.08), path
        assert w.abs().max().item() <= theirs.abs().max().item() * 1.05 + 1e-6, path


def test_self_sparse_attention_and_transformer_block_projections():
    sa = _layer({"type": "self_attention", "units": 3, "kernel_initializer": "ones"}, [5, 4])
    assert all(torch.equal(getattr(sa, p).weight, torch.ones(3, 4)) for p in ("query", "key", "value"))
    sp = _layer({"type": "sparse_attention", "num_heads": 2, "window": 2, "kernel_initializer": "zeros"}, [6, 4])
    assert not any(getattr(sp, p).weight.any() for p in ("query", "key", "value", "output"))
    tb = _layer({"type": "transformer_block", "ffn_dim": 8, "attention": {"type": "multi_head_attention", "num_heads": 2},
                 "kernel_initializer": "zeros", "bias_initializer": "ones"}, [5, 4])
    linears = [m for m in tb.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 6 and all(not m.weight.any() and torch.equal(m.bias, torch.ones_like(m.bias))
                                     for m in linears)
    assert torch.equal(tb.norm1.weight, torch.ones(4)) and not tb.norm1.bias.any()  # norms: PyTorch's init
    with pytest.raises(SpecError) as e:
        _layer({"type": "transformer_block", "attention": {"type": "multi_head_attention", "num_heads": 2,
                                                             "kernel_regularizer": "l2"}}, [5, 4])
    assert "set these on the block (kernel_regularizer)" in e.value.issues[0].message


def test_penalties_match_a_hand_computation_and_frozen_layers_add_none():
    ones = "ones"
    layers = [
        {"type": "multi_head_attention", "num_heads": 2, "kernel_initializer": CONST, "bias_initializer": ones,
         "kernel_regularizer": {"l1": 0.1}, "bias_regularizer": {"l2": 0.01}},  # 4 kernels 4×4, 4 biases of 4
        {"type": "layernorm", "gamma_initializer": CONST, "gamma_regularizer": {"l2": 1.0},
         "beta_initializer": ones, "beta_regularizer": {"l1": 0.2}},
        {"type": "prelu", "alpha_initializer": {"name": "constant", "value": -2.0}, "alpha_regularizer": {"l1": 0.5}},
        {"type": "batchnorm", "gamma_regularizer": "l2", "trainable": False},
    ]
    mha = 0.1 * 4 * 16 * 0.5 + 0.01 * 4 * 4 * 1.0
    norm = 1.0 * 4 * 0.25 + 0.2 * 4
    prelu = 0.5 * 12 * 2.0  # one α per element of (3, 4)
    model = _model(layers, [3, 4])
    assert model.regularization_loss().item() == pytest.approx(mha + norm + prelu, rel=1e-6)
    frozen = [{**layer, "trainable": False} for layer in layers]
    assert _model(frozen, [3, 4]).regularization_loss() is None  # no penalty at all


def test_the_editor_schema_offers_the_norm_prelu_and_attention_keys():
    import json

    from layerforge.spec.jsonschema import spec_json_schema

    schema = spec_json_schema()
    text = json.dumps(schema)
    for key in ("gamma_initializer", "beta_regularizer", "moving_variance_initializer", "alpha_initializer",
                "alpha_regularizer"):
        assert f'"{key}"' in text, key
    defs = json.dumps({k: v for k, v in schema.get("$defs", {}).items() if "ttention" in k or "Transformer" in k})
    assert '"kernel_initializer"' in defs and '"bias_regularizer"' in defs
