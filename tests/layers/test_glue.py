"""The glue layers (dropout, flatten/reshape/permute, embedding, positional_encoding, activation,
add/concat): values against independent references, parameter counts, FLOPs and shape errors, and a
small spec using them end to end."""
from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

import layerforge
from layerforge.errors import ShapeError, SpecError
from layerforge.layers.activation import Activation
from layerforge.layers.dropout import Dropout
from layerforge.layers.embedding import Embedding, PositionalEncoding
from layerforge.layers.merge import Add, Concat
from layerforge.layers.shape import Flatten, Permute, Reshape


# --- dropout -----------------------------------------------------------------------------------
def test_dropout_is_the_identity_in_eval_mode():
    m = Dropout(type="dropout", rate=0.5).build([(100,)]).eval()
    x = torch.randn(4, 100)
    assert torch.equal(m(x), x)


def test_dropout_rate_is_the_fraction_dropped_and_survivors_are_scaled_by_1_over_keep():
    rate = 0.3
    m = Dropout(type="dropout", rate=rate).build([(100_000,)]).train()
    torch.manual_seed(0)
    x = torch.rand(1, 100_000) + 0.5  # no zeros of its own
    y = m(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - rate) < 0.01  # binomial std ≈ 0.0015 at n = 100k
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / (1 - rate))


def test_dropout_rate_zero_is_the_identity_even_in_training():
    m = Dropout(type="dropout", rate=0.0).build([(50,)]).train()
    x = torch.randn(2, 50)
    assert torch.equal(m(x), x)


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5])
def test_dropout_rate_outside_0_1_is_refused_with_the_value(rate):
    with pytest.raises(ValidationError, match=f"probability of dropping.*got {rate}"):
        Dropout(type="dropout", rate=rate)


# --- flatten / reshape / permute ---------------------------------------------------------------
def test_flatten_keeps_the_batch_and_row_major_order():
    layer = Flatten(type="flatten")
    x = torch.randn(2, 4, 3, 3)
    assert layer.output_shape([(4, 3, 3)]) == (36,)
    assert torch.equal(layer.build([(4, 3, 3)])(x), x.reshape(2, 36))


@pytest.mark.parametrize("target,expect", [([3, -1], (3, 4)), ([-1], (12,)), ([2, 2, 3], (2, 2, 3)), ([1, -1, 2], (1, 6, 2))])
def test_reshape_infers_the_minus_one_and_keeps_element_order(target, expect):
    layer = Reshape(type="reshape", target_shape=target)
    assert layer.output_shape([(12,)]) == expect
    x = torch.randn(2, 12)
    assert torch.equal(layer.build([(12,)])(x), x.reshape(2, *expect))


def test_reshape_12_into_5_minus_1_is_a_shape_error_naming_both_sizes():
    with pytest.raises(ShapeError) as e:
        Reshape(type="reshape", target_shape=[5, -1]).output_shape([(12,)])
    assert "12 elements" in e.value.message and "5" in e.value.message


def test_reshape_with_a_wrong_total_names_both_element_counts():
    with pytest.raises(ShapeError, match=r"\(3, 4\) \(12 elements\) into \[5, 3\] \(15 elements\)"):
        Reshape(type="reshape", target_shape=[5, 3]).output_shape([(3, 4)])


@pytest.mark.parametrize("target", [[-1, -1], [0, 3], [], [-2, 6]])
def test_bad_target_shapes_are_refused(target):
    with pytest.raises(ValidationError, match="target_shape"):
        Reshape(type="reshape", target_shape=target)


def test_permute_reorders_the_per_sample_axes():
    layer = Permute(type="permute", dims=[2, 0, 1])
    x = torch.randn(2, 3, 4, 5)
    assert layer.output_shape([(3, 4, 5)]) == (5, 3, 4)
    assert torch.equal(layer.build([(3, 4, 5)])(x), x.permute(0, 3, 1, 2))
    with pytest.raises(ShapeError):
        layer.output_shape([(3, 4)])
    with pytest.raises(ValidationError, match="permutation"):
        Permute(type="permute", dims=[0, 0])


# --- embedding / positional encoding -----------------------------------------------------------
def test_embedding_looks_up_rows_of_its_table():
    layer = Embedding(type="embedding", input_dim=50, output_dim=8)
    m = layer.build([(7,)])
    ids = torch.randint(0, 50, (3, 7))
    torch.testing.assert_close(m(ids), m.weight[ids])
    assert layer.output_shape([(7,)]) == (7, 8)
    assert sum(p.numel() for p in m.parameters()) == 50 * 8
    assert layer.flops([(7,)], (7, 8)) == 0
    assert layer.id_range(0) == (0, 50)


def _closed_form_pe(t: int, d: int) -> torch.Tensor:
    pe = torch.empty(t, d)
    for p in range(t):
        for j in range(d):
            i2 = j - j % 2  # 2i for both members of a sin/cos pair
            angle = p / 10000 ** (i2 / d)
            pe[p, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    return pe


@pytest.mark.parametrize("d", [8, 7])
def test_sinusoidal_encoding_adds_the_closed_form_table(d):
    layer = PositionalEncoding(type="positional_encoding", max_len=20)
    m = layer.build([(11, d)])
    x = torch.randn(2, 11, d)
    torch.testing.assert_close(m(x), x + _closed_form_pe(11, d))
    assert list(m.parameters()) == []  # fixed: a buffer, not trained
    assert m.pe.shape == (20, d)


def test_learned_encoding_is_a_trained_max_len_by_d_table():
    layer = PositionalEncoding(type="positional_encoding", kind="learned", max_len=32)
    m = layer.build([(10, 6)])
    assert [(n, tuple(p.shape)) for n, p in m.named_parameters()] == [("pe", (32, 6))]
    x = torch.randn(2, 10, 6)
    y = m(x)
    torch.testing.assert_close(y, x + m.pe[:10])
    y.sum().backward()
    assert m.pe.grad[:10].abs().sum() > 0 and m.pe.grad[10:].abs().sum() == 0


def test_positional_encoding_flops_are_one_add_per_element():
    assert PositionalEncoding(type="positional_encoding").flops([(10, 16)], (10, 16)) == 160


def test_a_sequence_longer_than_max_len_is_a_shape_error():
    with pytest.raises(ShapeError) as e:
        PositionalEncoding(type="positional_encoding").output_shape([(600, 16)])
    assert "600" in e.value.message and "512" in e.value.message and "600" in e.value.hint


def test_positional_encoding_needs_a_rank_2_sequence():
    with pytest.raises(ShapeError, match=r"\(T, D\), got \(16,\)"):
        PositionalEncoding(type="positional_encoding").output_shape([(16,)])


# --- activation --------------------------------------------------------------------------------
def test_activation_layer_applies_the_function_elementwise():
    x = torch.randn(3, 4, 5)
    assert torch.equal(Activation(type="activation", activation="relu").build([(4, 5)])(x), x.clamp(min=0))
    torch.testing.assert_close(Activation(type="activation", activation="tanh").build([(4, 5)])(x), torch.tanh(x))


@pytest.mark.parametrize("axis,dim", [(-1, 2), (0, 1), (1, 2), (-2, 1)])
def test_softmax_axis_counts_over_the_per_sample_axes(axis, dim):
    layer = Activation(type="activation", activation="softmax", axis=axis)
    x = torch.randn(3, 4, 10)
    y = layer.build([(4, 10)])(x)
    torch.testing.assert_close(y, torch.exp(x) / torch.exp(x).sum(dim, keepdim=True))


def test_activation_flops_by_hand():
    # (4, 10) = 40 elements: softmax 3 each = 120, relu 1 each = 40, linear 0
    assert Activation(type="activation", activation="softmax").flops([(4, 10)], (4, 10)) == 120
    assert Activation(type="activation", activation="relu").flops([(4, 10)], (4, 10)) == 40
    assert Activation(type="activation", activation="linear").flops([(4, 10)], (4, 10)) == 0


def test_activation_argument_errors():
    with pytest.raises(ValidationError, match="axis only applies to softmax"):
        Activation(type="activation", activation="relu", axis=0)
    with pytest.raises(ValidationError, match="did you mean 'relu'"):
        Activation(type="activation", activation="rleu")
    with pytest.raises(ShapeError, match="axis 2 is out of range"):
        Activation(type="activation", activation="softmax", axis=2).output_shape([(4, 10)])


# --- add / concat ------------------------------------------------------------------------------
def test_add_sums_any_number_of_inputs():
    layer = Add(type="add")
    xs = [torch.randn(2, 4, 6) for _ in range(3)]
    torch.testing.assert_close(layer.build([(4, 6)] * 3)(*xs), xs[0] + xs[1] + xs[2])
    assert layer.output_shape([(4, 6)] * 3) == (4, 6)
    assert layer.flops([(4, 6)] * 3, (4, 6)) == 2 * 24  # (3 − 1) adds per element


def test_add_of_different_shapes_is_a_shape_error_listing_them():
    with pytest.raises(ShapeError, match=r"identical shape, got \(4,\), \(5,\)"):
        Add(type="add").output_shape([(4,), (5,)])


@pytest.mark.parametrize("axis,shapes,expect,dim", [
    (-1, [(4, 6), (4, 3)], (4, 9), 2),
    (0, [(2, 5, 5), (3, 5, 5)], (5, 5, 5), 1),
    (1, [(2, 3, 5), (2, 1, 5), (2, 4, 5)], (2, 8, 5), 2),
])
def test_concat_joins_along_the_axis(axis, shapes, expect, dim):
    layer = Concat(type="concat", axis=axis)
    xs = [torch.randn(2, *s) for s in shapes]
    assert layer.output_shape(shapes) == expect
    assert torch.equal(layer.build(shapes)(*xs), torch.cat(xs, dim=dim))
    assert layer.flops(shapes, expect) == 0


def test_concat_shape_errors_list_the_shapes():
    with pytest.raises(ShapeError, match=r"every other axis to match, got \(4, 6\), \(5, 3\)"):
        Concat(type="concat").output_shape([(4, 6), (5, 3)])
    with pytest.raises(ShapeError, match="same rank"):
        Concat(type="concat").output_shape([(4, 6), (24,)])
    with pytest.raises(ShapeError, match="out of range"):
        Concat(type="concat", axis=2).output_shape([(4, 6), (4, 6)])


def test_merge_layers_take_two_or_more_inputs():
    assert (Add.min_inputs, Add.max_inputs) == (2, 99)
    assert (Concat.min_inputs, Concat.max_inputs) == (2, 99)


# --- a small spec end to end -------------------------------------------------------------------
SPEC = {
    "model": {
        "input_shape": [3, 16, 16],
        "layers": [
            {"type": "conv2d", "name": "stem", "filters": 8, "kernel_size": 3, "padding": "same"},
            {"type": "batchnorm"},
            {"type": "activation", "activation": "relu", "name": "a"},
            {"type": "conv2d", "filters": 8, "kernel_size": 3, "padding": "same", "name": "b"},
            {"type": "add", "inputs": ["a", "b"]},
            {"type": "maxpool2d", "pool_size": 2},
            {"type": "dropout", "rate": 0.1},
            {"type": "global_avg_pool"},
            {"type": "reshape", "target_shape": [2, -1]},
            {"type": "layernorm"},
            {"type": "flatten"},
        ],
    }
}


def test_a_residual_cnn_spec_validates_builds_and_runs():
    model = layerforge.build_model(SPEC)
    y = model(torch.randn(2, 3, 16, 16))
    assert y.shape == (2, 8)


def test_layer_shape_errors_surface_as_located_spec_errors():
    bad = {"model": {"input_shape": [64], "layers": [{"type": "conv2d", "filters": 4, "kernel_size": 3}]}}
    with pytest.raises(SpecError) as e:
        layerforge.validate(bad)
    (issue,) = e.value.issues
    assert issue.path == ("model", "layers", 0) and "conv2d needs (C, H, W), got (64,)" in issue.message
