"""conv1d / conv2d: math against torch.nn.functional with the module's own weights, Keras 'same'
geometry, parameter counts, FLOPs by hand, and the shape errors a user meets."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from layerforge.errors import ShapeError
from layerforge.layers.conv import Conv1D, Conv2D


def conv2d(**kw) -> Conv2D:
    return Conv2D(type="conv2d", **kw)


def conv1d(**kw) -> Conv1D:
    return Conv1D(type="conv1d", **kw)


def _conv_of(module: torch.nn.Module) -> torch.nn.Module:
    return next(m for m in module.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d)))


def _keras_same_pads(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TensorFlow's 'SAME' rule written out independently: out = ceil(size/s), odd padding at the end."""
    out = math.ceil(size / s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize(
    "kw",
    [
        dict(filters=5, kernel_size=3),
        dict(filters=4, kernel_size=[3, 2], strides=2, activation="relu"),
        dict(filters=6, kernel_size=3, dilation_rate=2, padding=1),
        dict(filters=6, kernel_size=3, groups=3, padding=[1, 0], use_bias=False),
    ],
)
def test_conv2d_equals_functional_conv2d_with_its_weights(kw):
    layer = conv2d(**kw)
    torch.manual_seed(0)
    m = layer.build([(3, 11, 10)])
    conv = _conv_of(m)
    x = torch.randn(2, 3, 11, 10)
    p = layer.padding if isinstance(layer.padding, tuple) else (0, 0)
    ref = F.conv2d(x, conv.weight, conv.bias, stride=layer.strides, padding=p,
                   dilation=layer.dilation_rate, groups=layer.groups)
    if layer.activation == "relu":
        ref = ref.relu()
    y = m(x)
    assert y.shape[1:] == layer.output_shape([(3, 11, 10)])
    torch.testing.assert_close(y, ref)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("size", [7, 8, 9, 10])
def test_same_padding_gives_keras_output_size_ceil_size_over_stride(size, k, stride):
    layer = conv2d(filters=2, kernel_size=k, strides=stride, padding="same")
    expect = (2, math.ceil(size / stride), math.ceil((size + 1) / stride))
    assert layer.output_shape([(1, size, size + 1)]) == expect
    y = layer.build([(1, size, size + 1)])(torch.randn(1, 1, size, size + 1))
    assert tuple(y.shape[1:]) == expect


@pytest.mark.parametrize("stride,k,size", [(2, 3, 8), (2, 4, 9), (1, 4, 7), (2, 2, 10)])
def test_same_padding_matches_tensorflow_padding_with_extra_at_the_end(stride, k, size):
    layer = conv2d(filters=3, kernel_size=k, strides=stride, padding="same")
    torch.manual_seed(1)
    m = layer.build([(2, size, size)])
    conv = _conv_of(m)
    x = torch.randn(2, 2, size, size)
    top, bottom = _keras_same_pads(size, k, stride)
    ref = F.conv2d(F.pad(x, (top, bottom, top, bottom)), conv.weight, conv.bias, stride=stride)
    torch.testing.assert_close(m(x), ref)


def test_conv1d_equals_functional_conv1d_including_uneven_same_padding():
    layer = conv1d(filters=4, kernel_size=4, strides=2, padding="same", activation="tanh")
    torch.manual_seed(2)
    m = layer.build([(3, 9)])
    conv = _conv_of(m)
    x = torch.randn(2, 3, 9)
    left, right = _keras_same_pads(9, 4, 2)  # out 5, total 3 → (1, 2)
    assert (left, right) == (1, 2)
    ref = torch.tanh(F.conv1d(F.pad(x, (left, right)), conv.weight, conv.bias, stride=2))
    torch.testing.assert_close(m(x), ref)
    assert layer.output_shape([(3, 9)]) == (4, 5)


def test_conv1d_valid_dilated_output_length():
    # L_out = floor((20 − 2·(3 − 1) − 1) / 1) + 1 = 16
    assert conv1d(filters=2, kernel_size=3, dilation_rate=2).output_shape([(8, 20)]) == (2, 16)


def _params(layer, shape) -> int:
    return sum(p.numel() for p in layer.build([shape]).parameters())


def test_parameter_counts_match_the_analytic_formula():
    assert _params(conv2d(filters=32, kernel_size=3), (3, 32, 32)) == 32 * 3 * 3 * 3 + 32 == 896
    assert _params(conv2d(filters=32, kernel_size=3, use_bias=False), (3, 32, 32)) == 864
    assert _params(conv2d(filters=16, kernel_size=3, groups=4), (8, 10, 10)) == 16 * (8 // 4) * 9 + 16 == 304
    assert _params(conv1d(filters=16, kernel_size=3), (8, 20)) == 16 * 8 * 3 + 16 == 400


def test_conv2d_flops_by_hand():
    # (3, 32, 32) → 32 filters, 3×3, same: output (32, 32, 32) = 32768 elements.
    # multiply-adds: 2·3·3·3 = 54 per output → 1,769,472; bias 32,768; relu 32,768 → 1,835,008
    layer = conv2d(filters=32, kernel_size=3, padding="same", activation="relu")
    out = layer.output_shape([(3, 32, 32)])
    assert out == (32, 32, 32)
    assert layer.flops([(3, 32, 32)], out) == 54 * 32768 + 32768 + 32768 == 1_835_008


def test_grouped_conv2d_flops_by_hand():
    # (8, 10, 10), 16 filters 3×3, groups 4, valid → (16, 8, 8) = 1024 outputs, each 2·(8/4)·9 = 36 → 36,864 + bias 1024
    layer = conv2d(filters=16, kernel_size=3, groups=4)
    assert layer.flops([(8, 10, 10)], layer.output_shape([(8, 10, 10)])) == 36_864 + 1024 == 37_888


def test_conv1d_flops_by_hand():
    # (8, 20), 16 filters k3 valid → (16, 18) = 288 outputs, each 2·8·3 = 48 → 13,824 + bias 288 = 14,112
    layer = conv1d(filters=16, kernel_size=3)
    assert layer.flops([(8, 20)], layer.output_shape([(8, 20)])) == 14_112


@pytest.mark.parametrize("shape", [(64,), (1, 3, 8, 8)])
def test_conv2d_on_the_wrong_rank_is_a_shape_error_with_a_reshape_hint(shape):
    with pytest.raises(ShapeError) as e:
        conv2d(filters=8, kernel_size=3).output_shape([shape])
    assert e.value.message == f"conv2d needs (C, H, W), got {shape}"
    assert "reshape" in e.value.hint


def test_conv2d_on_a_square_vector_suggests_the_reshape():
    with pytest.raises(ShapeError) as e:
        conv2d(filters=8, kernel_size=3).output_shape([(64,)])
    assert "target_shape: [1, 8, 8]" in e.value.hint


def test_groups_not_dividing_the_input_channels_names_both_numbers():
    with pytest.raises(ShapeError) as e:
        conv2d(filters=12, kernel_size=3, groups=4).output_shape([(6, 8, 8)])
    assert "groups=4" in e.value.message and "(6)" in e.value.message and "(12)" in e.value.message


def test_groups_not_dividing_filters_is_refused_at_validation():
    with pytest.raises(ValidationError, match=r"groups \(3\) must divide filters \(32\)"):
        conv2d(filters=32, kernel_size=3, groups=3)


def test_a_kernel_larger_than_the_input_is_a_shape_error():
    with pytest.raises(ShapeError, match="5x5 kernel does not fit the 3x3 input"):
        conv2d(filters=2, kernel_size=5).output_shape([(1, 3, 3)])


@pytest.mark.parametrize("bad", ["full", -1, [1, 2, 3], True])
def test_bad_padding_is_refused_with_what_was_received(bad):
    with pytest.raises(ValidationError) as e:
        conv2d(filters=2, kernel_size=3, padding=bad)
    assert "padding" in str(e.value)


def test_padding_is_case_insensitive_and_an_int_means_both_axes():
    assert conv2d(filters=2, kernel_size=3, padding="SAME").padding == "same"
    assert conv2d(filters=2, kernel_size=3, padding=2).padding == (2, 2)
    assert conv1d(filters=2, kernel_size=3, padding=2).output_shape([(1, 10)]) == (2, 12)
