"""The Keras-parity layer types (norms, pools, merges, resizing, noise, prelu, wrappers, activations):
math against plain PyTorch with the module's own weights, FLOPs and parameter counts by hand, and the
errors a user meets. (The same types against Keras 3: test_keras_reference.py.)"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from layerforge.errors import ShapeError
from layerforge.layers.registry import get_layer_type


def make(type_: str, **kw):
    return get_layer_type(type_).model_validate({"type": type_, **kw})


def built(type_: str, shapes, **kw):
    layer = make(type_, **kw)
    torch.manual_seed(0)
    return layer, layer.build(shapes)


# --- activations ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, ref", [
    ("relu6", F.relu6), ("hard_sigmoid", F.hardsigmoid), ("hard_swish", F.hardswish), ("softsign", F.softsign),
    ("celu", F.celu), ("log_sigmoid", F.logsigmoid), ("hard_tanh", F.hardtanh), ("mish", F.mish),
    ("tanh_shrink", F.tanhshrink), ("exponential", torch.exp),
    ("squareplus", lambda x: (x + torch.sqrt(x**2 + 4)) / 2),
    ("sparse_sigmoid", lambda x: torch.where(x <= -1, 0.0, torch.where(x >= 1, 1.0, (x + 1) / 2))),
])
def test_activation_equals_the_torch_function(name, ref):
    x = torch.linspace(-5, 5, 101).reshape(1, 101)
    _, m = built("activation", [(101,)], activation=name)
    torch.testing.assert_close(m(x), ref(x))


def test_hard_sigmoid_is_keras3_torch_form_not_keras2():
    x = torch.tensor([[-2.0, 1.0, 2.0]])
    _, m = built("activation", [(3,)], activation="hard_sigmoid")
    torch.testing.assert_close(m(x), x / 6 + 0.5)
    assert not torch.allclose(m(x), (0.2 * x + 0.5).clamp(0, 1))  # Keras 2 / tf.keras


def test_glu_halves_its_axis_and_odd_sizes_are_shape_errors():
    layer, m = built("activation", [(4, 6)], activation="glu")
    x = torch.randn(2, 4, 6)
    assert layer.output_shape([(4, 6)]) == (4, 3)
    torch.testing.assert_close(m(x), x[..., :3] * torch.sigmoid(x[..., 3:]))
    assert layer.flops([(4, 6)], (4, 3)) == 2 * 12
    with pytest.raises(ShapeError, match="odd size 5"):
        layer.output_shape([(4, 5)])


def test_activation_constants_are_refused_where_they_do_not_apply():
    with pytest.raises(ValidationError, match="negative_slope only applies to leaky_relu"):
        make("activation", activation="relu", negative_slope=0.2)
    with pytest.raises(ValidationError, match="needs threshold"):
        make("activation", activation="threshold", value=0.0)
    with pytest.raises(ValidationError, match="needs its own layer"):
        make("dense", units=4, activation="glu")


def test_prelu_per_channel_equals_torch_prelu_and_counts_parameters():
    layer, m = built("prelu", [(3, 4, 5)], shared_axes=[1, 2])
    assert sum(p.numel() for p in m.parameters()) == 3
    ref = torch.nn.PReLU(3, init=0.25)
    x = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(m(x), ref(x))
    assert sum(p.numel() for p in built("prelu", [(3, 4, 5)])[1].parameters()) == 60  # Keras' default: per element
    assert layer.flops([(3, 4, 5)], (3, 4, 5)) == 2 * 60
    with pytest.raises(ShapeError, match="shared axis 3"):
        make("prelu", shared_axes=[3]).output_shape([(3, 4, 5)])


# --- pooling, normalisation -----------------------------------------------------------------------

def test_global_max_pool_keepdims_and_flops():
    layer, m = built("global_max_pool", [(3, 4, 5)], keepdims=True)
    x = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(m(x), F.adaptive_max_pool2d(x, 1))
    assert layer.output_shape([(3, 4, 5)]) == (3, 1, 1)
    assert layer.flops([(3, 4, 5)], (3, 1, 1)) == 3 * (20 - 1)


def test_group_norm_equals_functional_group_norm_and_counts():
    layer, m = built("group_norm", [(6, 4, 5)], groups=2)
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-1, 1)
    x = torch.randn(3, 6, 4, 5)
    torch.testing.assert_close(m(x), F.group_norm(x, 2, m.weight, m.bias, 1e-5))
    assert layer.flops([(6, 4, 5)], (6, 4, 5)) == 5 * 120 + 2 + 2 * 120
    assert sum(p.numel() for p in built("group_norm", [(6, 4)], groups=3, center=False)[1].parameters()) == 6
    with pytest.raises(ShapeError, match="groups=4 must divide the 6 channels"):
        make("group_norm", groups=4).output_shape([(6, 4, 5)])


def test_rms_norm_formula_and_flops():
    layer, m = built("rms_norm", [(4, 8)])
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 4, 8)
    torch.testing.assert_close(m(x), x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-6) * m.weight)
    if hasattr(torch.nn, "RMSNorm"):
        ref = torch.nn.RMSNorm(8, eps=1e-6)
        ref.load_state_dict(m.state_dict())
        torch.testing.assert_close(m(x), ref(x))
    assert layer.flops([(4, 8)], (4, 8)) == 3 * 32 + 3 * 4 + 32


# --- merges ---------------------------------------------------------------------------------------

def test_elementwise_merges_and_their_flops():
    xs = [torch.randn(2, 3, 4) for _ in range(3)]
    refs = {"multiply": xs[0] * xs[1] * xs[2], "average": (xs[0] + xs[1] + xs[2]) / 3,
            "maximum": torch.stack(xs).amax(0), "minimum": torch.stack(xs).amin(0)}
    for type_, ref in refs.items():
        layer, m = built(type_, [(3, 4)] * 3)
        torch.testing.assert_close(m(*xs), ref)
        assert layer.flops([(3, 4)] * 3, (3, 4)) == (3 if type_ == "average" else 2) * 12
    layer, m = built("subtract", [(3, 4)] * 2)
    torch.testing.assert_close(m(*xs[:2]), xs[0] - xs[1])
    assert make("subtract").max_inputs == 2
    with pytest.raises(ShapeError, match="multiply needs inputs of identical shape"):
        make("multiply").output_shape([(3, 4), (4, 3)])


def test_dot_contracts_the_given_axes_with_analytic_flops():
    layer, m = built("dot", [(4, 6), (5, 6)], axes=1)
    x1, x2 = torch.randn(2, 4, 6), torch.randn(2, 5, 6)
    torch.testing.assert_close(m(x1, x2), torch.einsum("btf,bsf->bts", x1, x2))
    assert layer.flops([(4, 6), (5, 6)], (4, 5)) == 2 * 6 * 4 * 5
    layer, m = built("dot", [(6,), (6,)], axes=0, normalize=True)
    a, b = torch.randn(2, 6), torch.randn(2, 6)
    torch.testing.assert_close(m(a, b), F.cosine_similarity(a, b).unsqueeze(1))
    with pytest.raises(ShapeError, match="the sizes differ"):
        make("dot", axes=0).output_shape([(4, 6), (5, 6)])


# --- resizing, repeat, time_distributed, noise ----------------------------------------------------

def test_resizing_layers_equal_torch_ops():
    x = torch.randn(2, 3, 4, 5)
    _, m = built("upsampling2d", [(3, 4, 5)], size=[2, 3], interpolation="bilinear")
    torch.testing.assert_close(m(x), F.interpolate(x, scale_factor=(2, 3), mode="bilinear", align_corners=False))
    layer, m = built("upsampling1d", [(3, 5)], size=2, interpolation="linear")
    torch.testing.assert_close(m(x[..., 0]), F.interpolate(x[..., 0], scale_factor=2, mode="linear"))
    assert layer.flops([(3, 4)], (3, 8)) == 3 * 24
    _, m = built("zero_padding2d", [(3, 4, 5)], padding=[[1, 0], [2, 3]])
    torch.testing.assert_close(m(x), F.pad(x, (2, 3, 1, 0)))
    layer, m = built("cropping2d", [(3, 4, 5)], cropping=[[1, 2], [0, 3]])
    torch.testing.assert_close(m(x), x[:, :, 1:2, 0:2])
    assert layer.output_shape([(3, 4, 5)]) == (3, 1, 2)
    with pytest.raises(ShapeError, match="removes every element"):
        make("cropping1d", cropping=[2, 2]).output_shape([(3, 4)])
    with pytest.raises(ValidationError, match="must not be negative"):
        make("zero_padding1d", padding=[-1, 0])


def test_repeat_vector_and_its_rank_error():
    layer, m = built("repeat_vector", [(5,)], n=3)
    x = torch.randn(2, 5)
    torch.testing.assert_close(m(x), torch.stack([x] * 3, dim=1))
    with pytest.raises(ShapeError, match="needs a vector"):
        layer.output_shape([(2, 5)])


def test_time_distributed_equals_the_layer_applied_per_step():
    layer, m = built("time_distributed", [(3, 2, 6, 6)], layer={"type": "conv2d", "filters": 4, "kernel_size": 3})
    x = torch.randn(2, 3, 2, 6, 6)
    ref = torch.stack([m.layer(x[:, t]) for t in range(3)], dim=1)
    torch.testing.assert_close(m(x), ref)
    out = layer.output_shape([(3, 2, 6, 6)])
    assert out == (3, 4, 4, 4)
    inner = make("conv2d", filters=4, kernel_size=3)
    assert layer.flops([(3, 2, 6, 6)], out) == 3 * inner.flops([(2, 6, 6)], (4, 4, 4))
    assert sum(p.numel() for p in m.parameters()) == 4 * 2 * 9 + 4


def test_time_distributed_refuses_bad_wrapped_layers():
    with pytest.raises(ValidationError, match="missing required key 'units'"):
        make("time_distributed", layer={"type": "dense"})
    with pytest.raises(ValidationError, match="unknown key 'unit' \\(did you mean 'units'"):
        make("time_distributed", layer={"type": "dense", "units": 3, "unit": 3})
    with pytest.raises(ValidationError, match="one-input layer"):
        make("time_distributed", layer={"type": "add"})
    with pytest.raises(ValidationError, match="unknown layer type 'dens'"):
        make("time_distributed", layer={"type": "dens", "units": 3})
    with pytest.raises(ShapeError, match="the wrapped conv2d at each of the 3 steps"):
        make("time_distributed", layer={"type": "conv2d", "filters": 2, "kernel_size": 3}).output_shape([(3, 8)])


def test_spatial_dropout2d_drops_whole_channels_like_torch_dropout2d():
    _, m = built("spatial_dropout2d", [(16, 3, 3)], rate=0.5)
    m.train()
    y = m(torch.ones(32, 16, 3, 3))
    per_channel = y.flatten(2)
    assert ((per_channel == 0).all(-1) | (per_channel == 2).all(-1)).all()
    assert 0.3 < (per_channel[..., 0] == 0).float().mean() < 0.7
    m.eval()
    torch.testing.assert_close(m(torch.ones(2, 16, 3, 3)), torch.ones(2, 16, 3, 3))
    with pytest.raises(ShapeError, match="rank-3 input"):
        make("spatial_dropout2d").output_shape([(16, 3)])
