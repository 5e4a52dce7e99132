"""depthwise / separable / transposed convolutions and conv1d causal padding: math against plain PyTorch
with the module's own weights, shapes, parameter counts, and FLOPs by hand. (Keras references:
test_keras_reference.py.)"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from layerforge.layers.registry import get_layer_type


def make(type_: str, **kw):
    return get_layer_type(type_).model_validate({"type": type_, **kw})


def convs(m: torch.nn.Module, cls=torch.nn.Conv2d) -> list:
    return [c for c in m.modules() if isinstance(c, cls)]


def test_causal_conv1d_output_never_reads_a_later_step():
    layer = make("conv1d", filters=2, kernel_size=3, dilation_rate=2, padding="causal")
    m = layer.build([(1, 10)])
    x = torch.randn(1, 1, 10)
    y = m(x)
    x2 = x.clone()
    x2[..., 6:] += 5.0  # change the future from step 6 on
    y2 = m(x2)
    torch.testing.assert_close(y[..., :6], y2[..., :6])
    assert not torch.allclose(y[..., 6:], y2[..., 6:])
    conv = convs(m, torch.nn.Conv1d)[0]
    torch.testing.assert_close(y, F.conv1d(F.pad(x, (4, 0)), conv.weight, conv.bias, dilation=2))


def test_depthwise_conv2d_is_grouped_conv_and_counts_flops():
    layer = make("depthwise_conv2d", kernel_size=3, depth_multiplier=2, strides=2, padding="same")
    m = layer.build([(3, 7, 7)])
    conv = convs(m)[0]
    assert conv.weight.shape == (6, 1, 3, 3) and conv.groups == 3
    x = torch.randn(2, 3, 7, 7)
    torch.testing.assert_close(m(x), F.conv2d(F.pad(x, (1, 1, 1, 1)), conv.weight, conv.bias, stride=2, groups=3))
    out = layer.output_shape([(3, 7, 7)])
    assert out == (6, 4, 4)
    assert layer.flops([(3, 7, 7)], out) == 2 * 9 * 6 * 16 + 6 * 16


def test_separable_conv2d_is_depthwise_then_pointwise_with_analytic_counts():
    layer = make("separable_conv2d", filters=32, kernel_size=3, padding="same", activation="relu")
    m = layer.build([(16, 5, 5)])
    dw, pw = convs(m)
    assert dw.bias is None and sum(p.numel() for p in m.parameters()) == 144 + 512 + 32
    x = torch.randn(2, 16, 5, 5)
    ref = F.conv2d(F.conv2d(x, dw.weight, padding=1, groups=16), pw.weight, pw.bias).relu()
    torch.testing.assert_close(m(x), ref)
    n = 25
    assert layer.flops([(16, 5, 5)], (32, 5, 5)) == 2 * 9 * 16 * n + 2 * 16 * 32 * n + 32 * n + 32 * n


@pytest.mark.parametrize("k, s, d", [(3, 2, 1), (4, 2, 1), (2, 1, 1), (1, 3, 1), (3, 1, 2), (5, 3, 1)])
def test_conv2d_transpose_same_is_the_adjoint_of_conv2d_same(k, s, d):
    """<conv(z), x> = <z, conv_transpose(x)> with the same weights: the transposed layer's `same` crops
    exactly where conv2d's `same` pads (odd element after), for every kernel/stride parity."""
    size = 5
    t = make("conv2d_transpose", filters=3, kernel_size=k, strides=s, dilation_rate=d, padding="same", use_bias=False)
    mt = t.build([(2, size, size)])
    out = t.output_shape([(2, size, size)])
    assert out == (3, size * s, size * s)
    c = make("conv2d", filters=2, kernel_size=k, strides=s, dilation_rate=d, padding="same", use_bias=False)
    mc = c.build([(3, *out[1:])])
    assert c.output_shape([(3, *out[1:])]) == (2, size, size)
    convs(mc)[0].weight.data.copy_(convs(mt, torch.nn.ConvTranspose2d)[0].weight)  # both (C_small, C_big, k, k)
    x, z = torch.randn(1, 2, size, size), torch.randn(1, *out)
    torch.testing.assert_close((mc(z) * x).sum(), (z * mt(x)).sum(), atol=1e-4, rtol=1e-5)


def test_conv_transpose_valid_sizes_and_flops():
    t = make("conv1d_transpose", filters=4, kernel_size=2, strides=3)  # k < strides: zeros between kernels
    m = t.build([(2, 5)])
    assert t.output_shape([(2, 5)]) == (4, 15) == tuple(m(torch.randn(1, 2, 5)).shape[1:])
    assert t.flops([(2, 5)], (4, 15)) == 2 * 2 * 5 * 2 * 4 + 4 * 15
    t2 = make("conv2d_transpose", filters=4, kernel_size=3, strides=2)
    assert t2.output_shape([(2, 4, 5)]) == (4, 9, 11)
    m2 = t2.build([(2, 4, 5)])
    x = torch.randn(1, 2, 4, 5)
    torch.testing.assert_close(m2(x), F.conv_transpose2d(x, m2.weight, m2.bias, stride=2))
