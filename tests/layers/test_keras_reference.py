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
from keras.src.backend.common import backend_utils  # noqa: E402  (the conv-transpose crop rule's version)

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
    if not hasattr(keras.activations, name):
        pytest.skip(f"keras {keras.__version__} has no activations.{name}")
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


def test_dense_and_conv_with_inline_activation_constants_match_keras():
    x = torch.randn(3, 6)
    _, m = lf("dense", [(6,)], units=4, activation={"name": "leaky_relu", "negative_slope": 0.2})
    k = layers.Dense(4, activation=layers.LeakyReLU(negative_slope=0.2))
    close(m(x), keras_call(k, x, weights=[np_(m[0].weight.T), np_(m[0].bias)]))
    x = torch.randn(2, 3, 5, 5)
    _, m = lf("conv2d", [(3, 5, 5)], filters=2, kernel_size=3, activation={"name": "elu", "alpha": 0.5})
    k = layers.Conv2D(2, 3, activation=lambda v: keras.activations.elu(v, alpha=0.5), data_format="channels_first")
    close(m(x), keras_call(k, x, weights=[np_(m[0].weight.permute(2, 3, 1, 0)), np_(m[0].bias)]))


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
                                dict(kernel_size=3, strides=2), dict(kernel_size=2, strides=3, padding="same"),
                                # output_padding (where Keras' torch backend crops as TF/JAX: an even crop or none)
                                dict(kernel_size=3, strides=2, output_padding=1), dict(kernel_size=2, strides=3, output_padding=0),
                                dict(kernel_size=5, strides=3, padding="same", output_padding=2),
                                dict(kernel_size=1, strides=3, padding="same", output_padding=[2, 1])])
def test_conv2d_transpose_matches_keras(kw):
    x = torch.randn(2, 3, 4, 5)
    layer, m = lf("conv2d_transpose", [(3, 4, 5)], filters=2, **kw)
    conv = next(c for c in m.modules() if isinstance(c, torch.nn.ConvTranspose2d))
    k = layers.Conv2DTranspose(2, kw["kernel_size"], strides=kw["strides"], padding=kw.get("padding", "valid"),
                               output_padding=kw.get("output_padding"), data_format="channels_first")
    ref = keras_call(k, x, weights=[np_(conv.weight.permute(2, 3, 1, 0)), np_(conv.bias)])
    close(m(x), ref)
    assert tuple(ref.shape[1:]) == layer.output_shape([(3, 4, 5)])


@pytest.mark.parametrize("output_padding", [None, 0, 1])
def test_conv1d_transpose_matches_keras(output_padding):
    x = torch.randn(2, 3, 6)
    _, m = lf("conv1d_transpose", [(3, 6)], filters=2, kernel_size=4, strides=2, padding="same",
              output_padding=output_padding)
    conv = next(c for c in m.modules() if isinstance(c, torch.nn.ConvTranspose1d))
    k = layers.Conv1DTranspose(2, 4, strides=2, padding="same", output_padding=output_padding,
                               data_format="channels_first")
    ref = keras_call(k, x, weights=[np_(conv.weight.permute(2, 1, 0)), np_(conv.bias)])
    if output_padding == 1 and not hasattr(backend_utils, "compute_conv_transpose_output_crops_for_torch"):
        close(m(x)[..., 1:], ref[..., :-1])  # odd crop: older Keras torch backends take it at the start
    else:
        close(m(x), ref)  # TF/JAX's crop, as Keras' torch backend (3.15 checked)


# --- resizing -------------------------------------------------------------------------------------

@pytest.mark.parametrize("interpolation", ["nearest", "bilinear", "bicubic"])
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


# --- pooling, normalisation -----------------------------------------------------------------------

@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pools_match_keras(keepdims):
    x = torch.randn(2, 3, 4, 5)
    for type_, k in [("global_avg_pool", layers.GlobalAveragePooling2D), ("global_max_pool", layers.GlobalMaxPooling2D)]:
        _, m = lf(type_, [(3, 4, 5)], keepdims=keepdims)
        close(m(x), keras_call(k(data_format="channels_first", keepdims=keepdims), x))
    _, m = lf("global_max_pool", [(3, 7)])
    close(m(x[:, :, 0]), keras_call(layers.GlobalMaxPooling1D(data_format="channels_first"), x[:, :, 0]))


def test_group_norm_matches_keras():
    x = torch.randn(2, 6, 4, 5) * 3 + 1
    _, m = lf("group_norm", [(6, 4, 5)], groups=3, epsilon=1e-3)
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-1, 1)
    k = layers.GroupNormalization(groups=3, axis=1, epsilon=1e-3)
    close(m(x), keras_call(k, x, weights=[np_(m.weight), np_(m.bias)]))


@pytest.mark.skipif(not hasattr(layers, "RMSNormalization"), reason="this keras has no RMSNormalization")
def test_rms_norm_matches_keras():
    x = torch.randn(2, 4, 8) * 2
    _, m = lf("rms_norm", [(4, 8)])
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5)
    close(m(x), keras_call(layers.RMSNormalization(axis=-1, epsilon=1e-6), x, weights=[np_(m.weight)]))


# --- merges ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("type_, k", [("multiply", layers.Multiply), ("subtract", layers.Subtract),
                                      ("average", layers.Average), ("maximum", layers.Maximum),
                                      ("minimum", layers.Minimum), ("add", layers.Add)])
def test_elementwise_merges_match_keras(type_, k):
    n = 2 if type_ == "subtract" else 3
    xs = [torch.randn(2, 3, 4) for _ in range(n)]
    _, m = lf(type_, [(3, 4)] * n)
    close(m(*xs), keras_call(k(), *xs))


@pytest.mark.parametrize("shapes, axes, normalize", [([(6,), (6,)], 0, False), ([(4, 6), (5, 6)], 1, False),
                                                     ([(4, 6), (4, 3)], 0, True), ([(4, 6), (6, 5)], [1, 0], False)])
def test_dot_matches_keras(shapes, axes, normalize):
    xs = [torch.randn(2, *s) for s in shapes]
    layer, m = lf("dot", shapes, axes=axes, normalize=normalize)
    kaxes = (axes + 1 if isinstance(axes, int) else tuple(a + 1 for a in axes))
    ref = keras_call(layers.Dot(axes=kaxes, normalize=normalize), *xs)
    close(m(*xs), ref)
    assert tuple(ref.shape[1:]) == layer.output_shape(shapes)


# --- prelu, repeat_vector, time_distributed, noise ------------------------------------------------

def test_prelu_matches_keras_with_shared_axes():
    x = torch.randn(2, 3, 4, 5)
    _, m = lf("prelu", [(3, 4, 5)], shared_axes=[1, 2])
    with torch.no_grad():
        m.weight.uniform_(0, 0.5)
    k = layers.PReLU(shared_axes=[2, 3])
    close(m(x), keras_call(k, x, weights=[np_(m.weight)]))


def test_repeat_vector_matches_keras():
    x = torch.randn(2, 5)
    _, m = lf("repeat_vector", [(5,)], n=3)
    close(m(x), keras_call(layers.RepeatVector(3), x))


def test_time_distributed_dense_matches_keras():
    x = torch.randn(2, 3, 4, 5)  # (B, T, 4, 5): a dense over the last axis of every step
    _, m = lf("time_distributed", [(3, 4, 5)], layer={"type": "dense", "units": 2, "activation": "tanh"})
    lin = m.layer[0]
    k = layers.TimeDistributed(layers.Dense(2, activation="tanh"))
    close(m(x), keras_call(k, x, weights=[np_(lin.weight.T), np_(lin.bias)]))


def test_spatial_dropout_drops_what_keras_drops_and_both_are_identity_in_eval():
    torch.manual_seed(0)
    x = torch.ones(64, 6, 5)  # (B, L, C) for Keras' SpatialDropout1D = channels_last here
    layer, m = lf("spatial_dropout1d", [(6, 5)], rate=0.5, data_format="channels_last")
    m.train()
    for y in (np_(m(x)), np_(layers.SpatialDropout1D(0.5)(x.numpy(), training=True))):
        assert set(np.unique(y)) <= {0.0, 2.0}
        assert (y == y[:, :1, :]).all()  # one draw per (sample, channel), shared by every step
        assert 0.3 < (y == 0).mean() < 0.7
    m.eval()
    close(m(x), x)


def test_gaussian_noise_statistics_match_keras():
    x = torch.zeros(4000, 5)
    _, m = lf("gaussian_noise", [(5,)], stddev=0.3)
    m.train()
    ours, theirs = np_(m(x)), np_(layers.GaussianNoise(0.3)(x.numpy(), training=True))
    for y in (ours, theirs):
        assert abs(y.mean()) < 0.02 and abs(y.std() - 0.3) < 0.02
    m.eval()
    close(m(x), x)
