"""Layer types against Keras 3 (torch backend) with the same weights copied across, within 1e-5.

Keras is a dev-only dependency (the `dev` extra); the module is skipped without it. It is imported once
here; every layerforge tensor is channels-first, so Keras layers run with data_format="channels_first"
or on the permuted tensor where Keras only has channels-last (the 1-D resizing layers)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from layerforge.layers.registry import get_layer_type

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("these references run Keras on its torch backend (KERAS_BACKEND=torch)", allow_module_level=True)
layers, ops = keras.layers, keras.ops

TOL = dict(atol=1e-5, rtol=1e-5)


def lf(type_: str, shapes: list[tuple[int, ...]], **kw):
    """A layerforge layer built for `shapes`, in eval mode, seeded."""
    layer = get_layer_type(type_).model_validate({"type": type_, **kw})
    torch.manual_seed(0)
    return layer, layer.build(shapes).eval()


def np_(t) -> np.ndarray:
    return ops.convert_to_numpy(t) if not isinstance(t, torch.Tensor) else t.detach().cpu().numpy()


def keras_call(klayer, *xs: torch.Tensor, weights: list[np.ndarray] | None = None) -> np.ndarray:
    arrays = [x.detach().numpy() for x in xs]
    klayer.build(arrays[0].shape if len(arrays) == 1 else [a.shape for a in arrays])
    if weights is not None:
        klayer.set_weights(weights)
    y = klayer(arrays[0] if len(arrays) == 1 else arrays)
    return np_(y)


def close(a, b) -> None:
    np.testing.assert_allclose(np_(a), np_(b), **TOL)


# --- activations, flatten -------------------------------------------------------------------------

KERAS_DEFAULT_ACTIVATIONS = [
    "relu6", "hard_sigmoid", "hard_silu", "hard_swish", "softsign", "celu", "log_sigmoid", "hard_tanh", "mish",
    "elu", "selu", "gelu", "silu", "softplus", "exponential", "hard_shrink", "soft_shrink", "tanh_shrink",
    "squareplus", "sparse_plus", "sparse_sigmoid",
]


@pytest.mark.parametrize("name", KERAS_DEFAULT_ACTIVATIONS)
def test_activation_matches_keras_function_with_its_default_constants(name):
    x = torch.linspace(-4, 4, 81).reshape(9, 9)
    _, m = lf("activation", [(9,)], activation=name)
    close(m(x), getattr(keras.activations, name)(x.numpy()))


@pytest.mark.parametrize("kw, keras_fn", [
    (dict(activation="leaky_relu", negative_slope=0.2), lambda x: keras.activations.leaky_relu(x)),
    (dict(activation="elu", alpha=0.5), lambda x: keras.activations.elu(x, alpha=0.5)),
    (dict(activation="celu", alpha=2.0), lambda x: keras.activations.celu(x, alpha=2.0)),
    (dict(activation="threshold", threshold=0.3, value=-1.0), lambda x: keras.activations.threshold(x, 0.3, -1.0)),
    (dict(activation="hard_shrink", threshold=1.0), lambda x: keras.activations.hard_shrink(x, 1.0)),
    (dict(activation="glu", axis=0), lambda x: keras.activations.glu(x, axis=1)),
])
def test_activation_constants_match_keras(kw, keras_fn):
    x = torch.linspace(-3, 3, 48).reshape(3, 4, 4)
    _, m = lf("activation", [(4, 4)], **kw)
    close(m(x), keras_fn(x.numpy()))


def test_leaky_relu_default_is_torch_slope_not_keras():
    x = torch.tensor([[-1.0, 2.0]])
    _, m = lf("activation", [(2,)], activation="leaky_relu")
    close(m(x), torch.tensor([[-0.01, 2.0]]))
    assert not np.allclose(np_(m(x)), np_(keras.activations.leaky_relu(x.numpy())))  # Keras: 0.2


def test_flatten_equals_keras_default_flatten_not_channels_first():
    x = torch.randn(2, 3, 4, 5)
    _, m = lf("flatten", [(3, 4, 5)])
    close(m(x), keras_call(layers.Flatten(), x))
    channels_first = keras_call(layers.Flatten(data_format="channels_first"), x)
    assert not np.allclose(np_(m(x)), channels_first)
    close(m(x.permute(0, 2, 3, 1)), channels_first)  # it flattens (H, W, C) order


# --- convolution variants -------------------------------------------------------------------------

def test_conv1d_causal_matches_keras():
    x = torch.randn(2, 3, 9)
    layer, m = lf("conv1d", [(3, 9)], filters=4, kernel_size=3, dilation_rate=2, padding="causal")
    conv = next(c for c in m.modules() if isinstance(c, torch.nn.Conv1d))
    k = layers.Conv1D(4, 3, dilation_rate=2, padding="causal", data_format="channels_first")
    ref = keras_call(k, x, weights=[np_(conv.weight.permute(2, 1, 0)), np_(conv.bias)])
    close(m(x), ref)
    assert layer.output_shape([(3, 9)]) == (4, 9)


@pytest.mark.parametrize("kw", [dict(kernel_size=3, depth_multiplier=2, padding="same"),
                                dict(kernel_size=[3, 2], strides=2, use_bias=False)])
def test_depthwise_conv2d_matches_keras(kw):
    x = torch.randn(2, 3, 7, 6)
    layer, m = lf("depthwise_conv2d", [(3, 7, 6)], **kw)
    conv = next(c for c in m.modules() if isinstance(c, torch.nn.Conv2d))
    mult = kw.get("depth_multiplier", 1)
    kh, kw_ = conv.weight.shape[2:]
    kernel = conv.weight.reshape(3, mult, kh, kw_).permute(2, 3, 0, 1)  # (k_h, k_w, C, M)
    weights = [np_(kernel)] + ([np_(conv.bias)] if conv.bias is not None else [])
    k = layers.DepthwiseConv2D(kw["kernel_size"], strides=kw.get("strides", 1), padding=kw.get("padding", "valid"),
                               depth_multiplier=mult, use_bias=conv.bias is not None, data_format="channels_first")
    close(m(x), keras_call(k, x, weights=weights))


def test_separable_conv2d_matches_keras():
    x = torch.randn(2, 4, 6, 6)
    _, m = lf("separable_conv2d", [(4, 6, 6)], filters=5, kernel_size=3, depth_multiplier=2, padding="same")
    dw, pw = [c for c in m.modules() if isinstance(c, torch.nn.Conv2d)]
    k = layers.SeparableConv2D(5, 3, depth_multiplier=2, padding="same", data_format="channels_first")
    weights = [np_(dw.weight.reshape(4, 2, 3, 3).permute(2, 3, 0, 1)), np_(pw.weight.permute(2, 3, 1, 0)), np_(pw.bias)]
    close(m(x), keras_call(k, x, weights=weights))


@pytest.mark.parametrize("kw", [dict(kernel_size=3, strides=1, padding="same"), dict(kernel_size=4, strides=2, padding="same"),
                                dict(kernel_size=3, strides=2), dict(kernel_size=2, strides=3, padding="same")])
def test_conv2d_transpose_matches_keras(kw):
    x = torch.randn(2, 3, 4, 5)
    layer, m = lf("conv2d_transpose", [(3, 4, 5)], filters=2, **kw)
    conv = next(c for c in m.modules() if isinstance(c, torch.nn.ConvTranspose2d))
    k = layers.Conv2DTranspose(2, kw["kernel_size"], strides=kw["strides"], padding=kw.get("padding", "valid"),
                               data_format="channels_first")
    ref = keras_call(k, x, weights=[np_(conv.weight.permute(2, 3, 1, 0)), np_(conv.bias)])
    close(m(x), ref)
    assert tuple(ref.shape[1:]) == layer.output_shape([(3, 4, 5)])


def test_conv1d_transpose_matches_keras():
    x = torch.randn(2, 3, 6)
    _, m = lf("conv1d_transpose", [(3, 6)], filters=2, kernel_size=4, strides=2, padding="same")
    conv = next(c for c in m.modules() if isinstance(c, torch.nn.ConvTranspose1d))
    k = layers.Conv1DTranspose(2, 4, strides=2, padding="same", data_format="channels_first")
    close(m(x), keras_call(k, x, weights=[np_(conv.weight.permute(2, 1, 0)), np_(conv.bias)]))


# --- resizing -------------------------------------------------------------------------------------

@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_upsampling2d_matches_keras(interpolation):
    x = torch.randn(2, 3, 4, 5)
    _, m = lf("upsampling2d", [(3, 4, 5)], size=[2, 3], interpolation=interpolation)
    close(m(x), keras_call(layers.UpSampling2D((2, 3), data_format="channels_first", interpolation=interpolation), x))


def test_1d_resizing_matches_keras_on_the_permuted_sequence():
    x = torch.randn(2, 3, 7)  # (B, C, L); Keras reads (B, L, C)
    for type_, kw, k in [("upsampling1d", dict(size=3), layers.UpSampling1D(3)),
                         ("zero_padding1d", dict(padding=[2, 1]), layers.ZeroPadding1D((2, 1))),
                         ("cropping1d", dict(cropping=[1, 2]), layers.Cropping1D((1, 2)))]:
        _, m = lf(type_, [(3, 7)], **kw)
        close(m(x).transpose(1, 2), keras_call(k, x.transpose(1, 2)))


def test_2d_padding_and_cropping_match_keras():
    x = torch.randn(2, 3, 6, 7)
    _, m = lf("zero_padding2d", [(3, 6, 7)], padding=[[1, 0], [2, 3]])
    close(m(x), keras_call(layers.ZeroPadding2D(((1, 0), (2, 3)), data_format="channels_first"), x))
    _, m = lf("cropping2d", [(3, 6, 7)], cropping=[[1, 2], [0, 3]])
    close(m(x), keras_call(layers.Cropping2D(((1, 2), (0, 3)), data_format="channels_first"), x))
