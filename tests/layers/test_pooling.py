"""Pooling layers: values against torch.nn.functional (valid) and a plain loop over Keras 'same' windows,
output sizes, FLOPs by hand and shape errors."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from layerforge.errors import ShapeError
from layerforge.layers.pooling import AvgPool1D, AvgPool2D, GlobalAvgPool, MaxPool1D, MaxPool2D


def _loop_pool2d(x: torch.Tensor, k: int, s: int, mode: str) -> torch.Tensor:
    """Keras 'same' pooling by hand: out = ceil(size/s), pad before = total // 2, padded cells ignored."""
    _, _, h, w = x.shape
    oh, ow = math.ceil(h / s), math.ceil(w / s)
    top = max((oh - 1) * s + k - h, 0) // 2
    left = max((ow - 1) * s + k - w, 0) // 2
    out = torch.empty(x.shape[0], x.shape[1], oh, ow)
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * s - top, j * s - left
            win = x[:, :, max(r0, 0):min(r0 + k, h), max(c0, 0):min(c0 + k, w)]
            out[:, :, i, j] = win.amax(dim=(2, 3)) if mode == "max" else win.mean(dim=(2, 3))
    return out


def _loop_pool1d(x: torch.Tensor, k: int, s: int, mode: str) -> torch.Tensor:
    """The same rule along one axis."""
    n = x.shape[-1]
    o = math.ceil(n / s)
    left = max((o - 1) * s + k - n, 0) // 2
    cols = []
    for t in range(o):
        a = t * s - left
        win = x[..., max(a, 0):min(a + k, n)]
        cols.append(win.amax(-1) if mode == "max" else win.mean(-1))
    return torch.stack(cols, -1)


def test_maxpool2d_valid_equals_functional_and_strides_default_to_pool_size():
    layer = MaxPool2D(type="maxpool2d", pool_size=2)
    x = torch.randn(2, 3, 9, 9)
    ref = F.max_pool2d(x, 2, 2)
    torch.testing.assert_close(layer.build([(3, 9, 9)])(x), ref)
    assert layer.output_shape([(3, 9, 9)]) == (3, 4, 4) == tuple(ref.shape[1:])


def test_avgpool2d_valid_with_strides_equals_functional():
    layer = AvgPool2D(type="avgpool2d", pool_size=[3, 2], strides=[2, 1])
    x = torch.randn(2, 3, 9, 7)
    ref = F.avg_pool2d(x, (3, 2), (2, 1))
    torch.testing.assert_close(layer.build([(3, 9, 7)])(x), ref)
    assert layer.output_shape([(3, 9, 7)]) == tuple(ref.shape[1:]) == (3, 4, 6)


@pytest.mark.parametrize("cls,mode", [(MaxPool2D, "max"), (AvgPool2D, "avg")])
@pytest.mark.parametrize("k,s,size", [(3, 2, 8), (2, 2, 7), (3, 1, 6), (4, 3, 10)])
def test_same_pooling_2d_matches_keras_windows_without_padding_cells(cls, mode, k, s, size):
    layer = cls(type=cls.type_name, pool_size=k, strides=s, padding="same")
    x = torch.randn(2, 3, size, size)
    y = layer.build([(3, size, size)])(x)
    assert layer.output_shape([(3, size, size)]) == (3, math.ceil(size / s), math.ceil(size / s)) == tuple(y.shape[1:])
    torch.testing.assert_close(y, _loop_pool2d(x, k, s, mode))


@pytest.mark.parametrize("cls,mode", [(MaxPool1D, "max"), (AvgPool1D, "avg")])
def test_pooling_1d_valid_and_same(cls, mode):
    x = torch.randn(2, 4, 11)
    valid = cls(type=cls.type_name, pool_size=3, strides=2)
    ref = (F.max_pool1d if mode == "max" else F.avg_pool1d)(x, 3, 2)
    torch.testing.assert_close(valid.build([(4, 11)])(x), ref)
    assert valid.output_shape([(4, 11)]) == (4, 5)  # floor((11 − 3) / 2) + 1
    same = cls(type=cls.type_name, pool_size=2, padding="same")
    torch.testing.assert_close(same.build([(4, 11)])(x), _loop_pool1d(x, 2, 2, mode))
    assert same.output_shape([(4, 11)]) == (4, 6)  # ceil(11 / 2)


@pytest.mark.parametrize("shape,dims", [((5, 7), (2,)), ((4, 3, 6), (2, 3)), ((2, 3, 4, 5), (2, 3, 4))])
def test_global_avg_pool_is_the_channel_mean_over_every_position(shape, dims):
    layer = GlobalAvgPool(type="global_avg_pool")
    x = torch.randn(3, *shape)
    torch.testing.assert_close(layer.build([shape])(x), x.mean(dim=dims))
    assert layer.output_shape([shape]) == (shape[0],)


def test_pooling_flops_by_hand():
    # maxpool2d 2×2 on (4, 9, 9) → (4, 4, 4) = 64 outputs × (4 − 1) comparisons = 192
    mp = MaxPool2D(type="maxpool2d", pool_size=2)
    assert mp.flops([(4, 9, 9)], mp.output_shape([(4, 9, 9)])) == 192
    # avgpool2d 3×3 s2 same on (4, 8, 8) → (4, 4, 4) = 64 outputs × (8 adds + 1 divide) = 576
    ap = AvgPool2D(type="avgpool2d", pool_size=3, strides=2, padding="same")
    assert ap.flops([(4, 8, 8)], ap.output_shape([(4, 8, 8)])) == 576
    # avgpool1d k2 same on (4, 11) → (4, 6) = 24 outputs × 2 = 48; maxpool1d k2 → (4, 5) = 20 × 1 = 20
    a1 = AvgPool1D(type="avgpool1d", pool_size=2, padding="same")
    assert a1.flops([(4, 11)], a1.output_shape([(4, 11)])) == 48
    m1 = MaxPool1D(type="maxpool1d", pool_size=2)
    assert m1.flops([(4, 11)], m1.output_shape([(4, 11)])) == 20
    # global average over (8, 5, 5): 24 adds + 1 divide per channel = 25 × 8 = 200
    g = GlobalAvgPool(type="global_avg_pool")
    assert g.flops([(8, 5, 5)], (8,)) == 200


def test_pooling_has_no_parameters():
    for layer, shape in [(MaxPool2D(type="maxpool2d"), (2, 6, 6)), (AvgPool2D(type="avgpool2d", padding="same"), (2, 5, 5)),
                         (GlobalAvgPool(type="global_avg_pool"), (2, 5, 5))]:
        assert sum(p.numel() for p in layer.build([shape]).parameters()) == 0


def test_maxpool2d_on_a_sequence_is_a_shape_error():
    with pytest.raises(ShapeError, match=r"maxpool2d needs \(C, H, W\), got \(4, 10\)"):
        MaxPool2D(type="maxpool2d").output_shape([(4, 10)])


def test_a_pool_window_larger_than_the_input_is_a_shape_error_suggesting_same():
    with pytest.raises(ShapeError) as e:
        MaxPool2D(type="maxpool2d", pool_size=4).output_shape([(1, 3, 3)])
    assert "same" in e.value.hint


def test_global_avg_pool_on_a_vector_is_a_shape_error():
    with pytest.raises(ShapeError, match=r"got \(16,\)"):
        GlobalAvgPool(type="global_avg_pool").output_shape([(16,)])


@pytest.mark.parametrize("kw", [dict(strides=0), dict(pool_size=[2, 0]), dict(padding="full")])
def test_bad_pool_arguments_are_refused(kw):
    with pytest.raises(ValidationError):
        MaxPool2D(type="maxpool2d", **kw)
