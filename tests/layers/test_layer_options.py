"""Layer options Keras users reach for (issue 16): activation constants inside dense/conv (the mapping
form of `activation:`), output_padding on the transposed convolutions, bicubic upsampling. Math against
the activation layer / torch functional and a hand-written scatter and cubic reference; FLOPs against
FlopCounterMode and by hand; spec errors located. (Keras references: test_keras_reference.py.)"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from layerforge.errors import ShapeError, SpecError
from layerforge.layers.common import ActivationWithConstants
from layerforge.layers.registry import get_layer_type, registry
from layerforge.spec.jsonschema import spec_json_schema
from tests.helpers import run_cli, write_spec


def make(type_: str, **kw):
    return get_layer_type(type_).model_validate({"type": type_, **kw})


# --- activation constants inside dense/conv ------------------------------------------------------

def _inline_activation_types() -> list[str]:
    """Every registered type whose `activation:` takes the mapping form (found by the field's type)."""
    out = []
    for name, cls in registry().items():
        f = cls.model_fields.get("activation")
        if f is not None and ActivationWithConstants in getattr(f.annotation, "__args__", ()):
            out.append(name)
    return out


def test_every_layer_with_an_inline_activation_takes_the_mapping_form():
    assert {"dense", "conv1d", "conv2d", "depthwise_conv2d", "separable_conv2d", "conv1d_transpose",
            "conv2d_transpose"} <= set(_inline_activation_types())


@pytest.mark.parametrize("type_", _inline_activation_types())
@pytest.mark.parametrize("act, ref", [
    ({"name": "leaky_relu", "negative_slope": 0.2}, lambda y: F.leaky_relu(y, 0.2)),
    ({"name": "elu", "alpha": 0.5}, lambda y: F.elu(y, 0.5)),
    ({"name": "soft_shrink", "threshold": 0.1}, lambda y: F.softshrink(y, 0.1)),
])
def test_inline_activation_constants_equal_the_linear_layer_then_the_torch_function(type_, act, ref):
    cls = get_layer_type(type_)
    base = _example_params(cls)
    shapes = list(cls.example_inputs)
    plain, with_act = make(type_, **{**base, "activation": "linear"}), make(type_, **{**base, "activation": act})
    torch.manual_seed(0)
    m_plain = plain.build(shapes).eval()
    torch.manual_seed(0)
    m_act = with_act.build(shapes).eval()
    x = torch.randn(2, *shapes[0])
    torch.testing.assert_close(m_act(x), ref(m_plain(x)))
    # the constants do not change the count: the same FLOPs as the plain name
    out = with_act.output_shape(shapes)
    assert with_act.flops(shapes, out) == make(type_, **{**base, "activation": act["name"]}).flops(shapes, out)


def _example_params(cls) -> dict:
    import yaml

    (raw,) = yaml.safe_load(cls.example)
    return {k: v for k, v in raw.items() if k not in ("type", "activation")}


def test_inline_leaky_relu_equals_the_activation_layer_with_the_same_slope():
    x = torch.linspace(-3, 3, 40).reshape(4, 10)
    dense = make("dense", units=6, activation={"name": "leaky_relu", "negative_slope": 0.3})
    torch.manual_seed(0)
    m = dense.build([(10,)])
    act = make("activation", activation="leaky_relu", negative_slope=0.3).build([(6,)])
    torch.testing.assert_close(m(x), act(m[0](x)))


def test_plain_leaky_relu_keeps_torch_slope_and_a_mapping_without_constants_is_the_name():
    assert make("dense", units=2, activation="leaky_relu").build([(3,)])[1].negative_slope == 0.01
    layer = make("conv2d", filters=2, kernel_size=1, activation={"name": "Relu"})
    assert layer.activation == "relu" and isinstance(layer.activation, str)


def test_inline_activation_survives_a_dump_and_reload():
    layer = make("dense", units=2, activation={"name": "elu", "alpha": 0.7})
    for dumped in (layer.model_dump(mode="json", exclude_none=True), layer.model_dump()):
        assert get_layer_type("dense").model_validate(dumped).activation == ActivationWithConstants(name="elu", alpha=0.7)
    assert layer.model_dump(mode="json", exclude_none=True)["activation"] == {"name": "elu", "alpha": 0.7}


@pytest.mark.parametrize("act, message", [
    ({"name": "leaky_relu", "negative_slop": 0.2}, "unknown key 'negative_slop' in the activation mapping; did you mean 'negative_slope'?"),
    ({"name": "leaky_rel"}, "did you mean 'leaky_relu'?"),
    ({"name": "relu", "alpha": 1.0}, "alpha only applies to elu, celu, got activation 'relu'"),
    ({"name": "softmax", "axis": 0}, "axis only exists on the activation layer"),
    ({"name": "threshold", "threshold": 0.1}, "needs its own layer"),
    ({"negative_slope": 0.2}, "needs a name"),
    ({"name": "elu", "alpha": "big"}, "alpha must be a number"),
])
def test_inline_activation_errors_are_located_at_the_key(tmp_path, act, message):
    import json

    spec = write_spec(tmp_path, f"""
        model:
          input_shape: [8]
          layers:
            - {{type: dense, units: 4}}
            - {{type: dense, units: 2, activation: {json.dumps(act)}}}
        """)
    import layerforge as lf

    with pytest.raises(SpecError) as e:
        lf.validate(str(spec))
    (issue,) = e.value.issues
    assert message in issue.message
    assert issue.path == ("model", "layers", 1, "activation") and issue.line == 5


def test_json_schema_describes_both_activation_forms():
    act = spec_json_schema()["$defs"]["layer_dense"]["properties"]["activation"]
    string, mapping = act["anyOf"]
    assert "leaky_relu" in string["enum"] and "glu" not in string["enum"]
    assert mapping["type"] == "object" and mapping["additionalProperties"] is False
    assert set(mapping["properties"]) == {"name", "negative_slope", "alpha", "threshold"}
    assert mapping["required"] == ["name"]


# --- output_padding on the transposed convolutions -----------------------------------------------

def scatter_reference(x: np.ndarray, w: np.ndarray, s: int, d: int, n: int) -> np.ndarray:
    """conv1d_transpose by its documented rule, one axis: scatter every input element over its taps into
    the full output (length (L − 1)·s + k_d), then take the window of size n starting at ⌊(full − n)/2⌋
    (zeros past the end when n > full). x (C, L), w (C, O, k) → (O, n)."""
    c, length = x.shape
    k = w.shape[2]
    full = (length - 1) * s + d * (k - 1) + 1
    z = np.zeros((w.shape[1], max(full, n)))
    for ci in range(c):
        for t in range(length):
            for j in range(k):
                z[:, t * s + j * d] += w[ci, :, j] * x[ci, t]
    start = max((full - n) // 2, 0)
    return z[:, start:start + n]


def keras_size(length: int, k: int, s: int, d: int, padding: str, op: int) -> int:
    """Keras 3's output size with output_padding (backend_utils._get_output_shape_given_tf_padding)."""
    kd = d * (k - 1) + 1
    return (length - 1) * s + kd + op if padding == "valid" else (length - 1) * s + kd % 2 + op


@pytest.mark.parametrize("k, s, d, padding, op", [
    (3, 2, 1, "valid", 1), (3, 2, 1, "same", 1), (4, 2, 1, "same", 0), (5, 3, 1, "same", 2), (1, 3, 1, "same", 2),
    (2, 3, 1, "valid", 0), (3, 1, 2, "valid", 1), (3, 1, 2, "same", 1),
])
def test_output_padding_equals_the_scatter_rule_with_keras_sizes(k, s, d, padding, op):
    length = 5
    layer = make("conv1d_transpose", filters=3, kernel_size=k, strides=s, dilation_rate=d, padding=padding,
                 output_padding=op, use_bias=False)
    n = keras_size(length, k, s, d, padding, op)
    assert layer.output_shape([(2, length)]) == (3, n)
    m = layer.build([(2, length)])
    conv = next(c for c in m.modules() if isinstance(c, torch.nn.ConvTranspose1d))
    x = torch.randn(1, 2, length, dtype=torch.float64)
    ref = scatter_reference(x[0].numpy(), conv.weight.detach().double().numpy(), s, d, n)
    np.testing.assert_allclose(m.double()(x)[0].detach().numpy(), ref, atol=1e-10)


def test_output_padding_2d_sizes_per_axis_and_flops_match_flop_counter():
    layer = make("conv2d_transpose", filters=4, kernel_size=3, strides=[2, 3], padding="same", output_padding=[1, 2])
    shapes = [(2, 4, 5)]
    out = layer.output_shape(shapes)
    assert out == (4, keras_size(4, 3, 2, 1, "same", 1), keras_size(5, 3, 3, 1, "same", 2)) == (4, 8, 15)
    m = layer.build(shapes)
    with FlopCounterMode(display=False) as counter:
        y = m(torch.randn(1, *shapes[0]))
    assert tuple(y.shape[1:]) == out
    # the scatter form: every input element times every tap; the padded positions add only the bias
    assert counter.get_total_flops() == 2 * 2 * 4 * 5 * 9 * 4
    assert layer.flops(shapes, out) == counter.get_total_flops() + 4 * 8 * 15


def test_output_padding_errors():
    with pytest.raises(ValueError, match=r"output_padding 2 must be smaller than the larger of strides \(2\)"):
        make("conv1d_transpose", filters=2, kernel_size=3, strides=2, output_padding=2)
    with pytest.raises(ValueError, match="non-negative"):
        make("conv2d_transpose", filters=2, kernel_size=3, strides=2, output_padding=[1, -1])
    assert make("conv1d_transpose", filters=2, kernel_size=3, dilation_rate=2, output_padding=1)  # PyTorch's rule
    layer = make("conv1d_transpose", filters=2, kernel_size=2, padding="same", output_padding=0)
    with pytest.raises(ShapeError, match="leaves no output position"):
        layer.output_shape([(3, 1)])


def test_output_padding_error_is_located(tmp_path, capsys):
    spec = write_spec(tmp_path, """
        model:
          input_shape: [3, 8, 8]
          layers:
            - {type: conv2d_transpose, filters: 4, kernel_size: 3, strides: 2, output_padding: 2}
        """)
    r = run_cli(capsys, "validate", str(spec))
    assert r.code == 2
    assert "spec.yaml:4:" in r.err + r.out and "output_padding" in r.err + r.out


# --- bicubic upsampling ---------------------------------------------------------------------------

def cubic_upsample_1d(x: np.ndarray, s: int, a: float = -0.75) -> np.ndarray:
    """Keys' cubic convolution along the last axis, half-pixel centres, borders clamped (PyTorch's rule)."""
    def w(t: float) -> float:
        t = abs(t)
        if t <= 1:
            return (a + 2) * t**3 - (a + 3) * t**2 + 1
        return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a if t < 2 else 0.0

    length = x.shape[-1]
    out = np.zeros((*x.shape[:-1], length * s))
    for t in range(length * s):
        p = (t + 0.5) / s - 0.5
        i = int(np.floor(p))
        for m in range(-1, 3):
            out[..., t] += w(p - (i + m)) * x[..., min(max(i + m, 0), length - 1)]
    return out


def test_bicubic_upsampling_equals_keys_cubic_convolution_per_axis_and_counts_31_flops():
    layer = make("upsampling2d", size=[2, 3], interpolation="bicubic")
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64)
    y = layer.build([(2, 4, 5)]).double()(x)[0].numpy()
    ref = cubic_upsample_1d(cubic_upsample_1d(x[0].numpy(), 3).swapaxes(1, 2), 2).swapaxes(1, 2)
    np.testing.assert_allclose(y, ref, atol=1e-10)
    assert layer.output_shape([(2, 4, 5)]) == (2, 8, 15)
    assert layer.flops([(2, 4, 5)], (2, 8, 15)) == 31 * 2 * 8 * 15


@pytest.mark.parametrize("mode, message", [("lanczos3", "no Lanczos"), ("lanczos5", "no Lanczos"),
                                           ("area", "equals 'nearest'")])
def test_keras_interpolations_torch_lacks_are_refused_with_what_to_use(mode, message):
    with pytest.raises(ValueError, match=message):
        make("upsampling2d", interpolation=mode)


def test_area_upsampling_by_an_integer_factor_is_what_nearest_gives():
    """Backs the 'area' refusal: torch's area resampling at an integer factor equals the nearest layer."""
    x = torch.randn(1, 2, 4, 5)
    nearest = make("upsampling2d", size=[2, 3]).build([(2, 4, 5)])
    torch.testing.assert_close(F.interpolate(x, scale_factor=(2, 3), mode="area"), nearest(x))
