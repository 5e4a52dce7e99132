"""Pieces shared by layer families: bounded sizes and counts, activation names, Keras-style int-or-pair
arguments.

``Size`` (1 … 2**31 − 1) and ``Count`` (1 … 256) come from :mod:`layerforge.limits`: use ``Count`` for a
repeat count (stacked layers, heads), whose cost grows with its value even when nothing is allocated.
Any other integer parameter is bounded by ``LayerSpec`` itself (±2**31 − 1)."""
from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from ..limits import Count, Size  # noqa: F401  (re-exported for the families)
from ..text import suggest

# name → FLOPs per element (see docs/flops.md). torch modules are made by `make_activation`. The
# constants follow Keras 3 where the two libraries agree; leaky_relu keeps torch's slope 0.01 (see
# the activation layer's `negative_slope`), hard_sigmoid is Keras 3's / torch's relu6(x + 3) / 6.
ACTIVATION_FLOPS: dict[str, int] = {
    "linear": 0, "relu": 1, "leaky_relu": 1, "elu": 1, "selu": 1, "gelu": 1, "silu": 1, "swish": 1,
    "tanh": 1, "sigmoid": 1, "softplus": 1, "softmax": 3, "log_softmax": 3, "mish": 1, "hard_sigmoid": 1,
    "relu6": 1, "hard_silu": 1, "hard_swish": 1, "softsign": 1, "celu": 1, "log_sigmoid": 1, "hard_tanh": 1,
    "exponential": 1, "hard_shrink": 1, "soft_shrink": 1, "tanh_shrink": 1, "squareplus": 1,
    "sparse_plus": 1, "sparse_sigmoid": 1, "glu": 2, "threshold": 1,
}
# Only the activation layer takes these: glu halves an axis (the shape changes) and threshold has no default.
LAYER_ONLY_ACTIVATIONS = ("glu", "threshold")
# constant → the activations that take it, and its default there (None: required). The activation layer
# takes them as its own parameters; dense/conv take the first three in the mapping form of `activation:`.
ACTIVATION_CONSTANTS: dict[str, dict[str, float | None]] = {
    "negative_slope": {"leaky_relu": 0.01},
    "alpha": {"elu": 1.0, "celu": 1.0},
    "threshold": {"threshold": None, "hard_shrink": 0.5, "soft_shrink": 0.5},
    "value": {"threshold": None},
}


def _check_activation(v: Any, *, layer_only_ok: bool = False) -> str:
    if v is None:
        return "linear"
    if not isinstance(v, str):
        raise ValueError(f"expected an activation name, got {v!r}")
    name = v.lower()
    if name not in ACTIVATION_FLOPS:
        hint = suggest(name, ACTIVATION_FLOPS)
        raise ValueError(
            f"unknown activation '{v}'" + (f"; {hint}" if hint else "")
            + f" (known: {', '.join(ACTIVATION_FLOPS)})"
        )
    if name in LAYER_ONLY_ACTIVATIONS and not layer_only_ok:
        raise ValueError(f"activation '{name}' needs its own layer (it {'halves an axis' if name == 'glu' else 'takes a threshold and a value'}): "
                         f"write a separate - {{type: activation, activation: {name}}} after this layer")
    return name


def check_activation_constants(name: str, given: dict[str, float | None]) -> None:
    """Refuse a constant the activation does not take, or a required one left out (ValueError)."""
    for param, takers in ACTIVATION_CONSTANTS.items():
        value = given.get(param)
        if value is not None and name not in takers:
            raise ValueError(f"{param} only applies to {', '.join(takers)}, got activation '{name}'")
        if value is None and takers.get(name, 0.0) is None:
            raise ValueError(f"activation '{name}' needs {param}: e.g. "
                             "- {type: activation, activation: threshold, threshold: 0.1, value: 0.0}")


class ActivationWithConstants(BaseModel):
    """The mapping form of a layer's `activation:`, e.g. {name: leaky_relu, negative_slope: 0.2}."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="The activation's name (as in the plain form).")
    negative_slope: float | None = Field(default=None, description="leaky_relu's slope for x < 0 (default 0.01).")
    alpha: float | None = Field(default=None, description="elu's / celu's α (default 1.0).")
    threshold: float | None = Field(default=None, description="hard_shrink's / soft_shrink's λ (default 0.5).")

    def constants(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump().items() if k != "name" and v is not None}


def _activation_arg(v: Any) -> "str | ActivationWithConstants":
    """A layer's `activation:`: a name, or a mapping {name, constant: value, ...} (a mapping without
    constants is just its name). Unknown names and keys are refused with a did-you-mean hint."""
    if isinstance(v, ActivationWithConstants):
        return v
    if not isinstance(v, dict):
        return _check_activation(v)
    keys = list(ActivationWithConstants.model_fields)
    for key in v:
        if key not in keys:
            hint = suggest(str(key), keys) or {
                "activation": "write the function's name under name:",
                "axis": "axis only exists on the activation layer: write a separate - {type: activation, ...}",
                "value": "value only exists on the activation layer: write a separate - {type: activation, ...}",
            }.get(str(key))
            raise ValueError(f"unknown key '{key}' in the activation mapping" + (f"; {hint}" if hint else "")
                             + f" (keys: {', '.join(keys)})")
    if "name" not in v:
        raise ValueError("the activation mapping needs a name, e.g. {name: leaky_relu, negative_slope: 0.2}")
    name = _check_activation(v["name"])
    given = {k: x for k, x in v.items() if k != "name" and x is not None}
    for k, x in given.items():
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise ValueError(f"the activation's {k} must be a number, got {x!r}")
    check_activation_constants(name, given)
    return ActivationWithConstants(name=name, **given) if given else name


def activation_name(act: "str | ActivationWithConstants") -> str:
    return act.name if isinstance(act, ActivationWithConstants) else act


def _inline_activation_schema() -> dict[str, Any]:
    names = [n for n in ACTIVATION_FLOPS if n not in LAYER_ONLY_ACTIVATIONS]
    mapping = ActivationWithConstants.model_json_schema()
    mapping["properties"]["name"] = {"enum": names, "description": "The activation's name."}
    mapping.pop("title", None)
    return {"anyOf": [{"type": "string", "enum": names}, mapping],
            "description": "An activation name, or a mapping with its constants: {name: leaky_relu, negative_slope: 0.2}."}


# A dense/conv layer's `activation:` (no glu / threshold): the validated value is the name (a str), or an
# ActivationWithConstants when constants are given. make_activation / activation_flops take either.
ActivationName = Annotated[
    str | ActivationWithConstants,
    BeforeValidator(_activation_arg, json_schema_input_type=str | ActivationWithConstants),
    WithJsonSchema(_inline_activation_schema()),
]
# The activation layer's own field: also glu and threshold; its constants are the layer's parameters.
AnyActivationName = Annotated[str, BeforeValidator(lambda v: _check_activation(v, layer_only_ok=True))]


@cache
def _elementwise_class() -> type:
    """Activations torch has no module for, as one small module keyed by name."""
    import torch
    from torch import nn

    fns = {
        "exponential": torch.exp,
        "squareplus": lambda x: (x + torch.sqrt(x * x + 4.0)) / 2,  # Keras' b = 4
        # Keras: 0 for x ≤ −1, (x + 1)² / 4 for |x| < 1, x for x ≥ 1
        "sparse_plus": lambda x: torch.where(x <= -1, torch.zeros_like(x), torch.where(x >= 1, x, (x + 1) ** 2 / 4)),
        "sparse_sigmoid": lambda x: ((x + 1) / 2).clamp(0, 1),  # Keras: 0 for x ≤ −1, 1 for x ≥ 1, (x + 1)/2
    }

    class Elementwise(nn.Module):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name, self.fn = name, fns[name]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fn(x)

        def extra_repr(self) -> str:
            return self.name

    return Elementwise


def make_activation(act: "str | ActivationWithConstants", **params: float | None):
    """The torch module for an activation (identity for 'linear'): a name, or a name with its constants.
    ``params`` are the activation layer's constants (negative_slope, alpha, threshold, value, axis) where
    the function takes one."""
    from torch import nn

    name = activation_name(act)
    p = {k: v for k, v in params.items() if v is not None}
    if isinstance(act, ActivationWithConstants):
        p.update(act.constants())
    table = {
        "linear": nn.Identity, "relu": nn.ReLU, "elu": lambda: nn.ELU(alpha=p.get("alpha", 1.0)), "selu": nn.SELU,
        "leaky_relu": lambda: nn.LeakyReLU(negative_slope=p.get("negative_slope", 0.01)),
        "gelu": nn.GELU, "silu": nn.SiLU, "swish": nn.SiLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
        "softplus": nn.Softplus, "mish": nn.Mish, "hard_sigmoid": nn.Hardsigmoid,
        "softmax": lambda: nn.Softmax(dim=-1), "log_softmax": lambda: nn.LogSoftmax(dim=-1),
        "relu6": nn.ReLU6, "hard_silu": nn.Hardswish, "hard_swish": nn.Hardswish, "softsign": nn.Softsign,
        "celu": lambda: nn.CELU(alpha=p.get("alpha", 1.0)), "log_sigmoid": nn.LogSigmoid, "hard_tanh": nn.Hardtanh,
        "hard_shrink": lambda: nn.Hardshrink(p.get("threshold", 0.5)),
        "soft_shrink": lambda: nn.Softshrink(p.get("threshold", 0.5)), "tanh_shrink": nn.Tanhshrink,
        "glu": lambda: nn.GLU(dim=p.get("axis", -1)),
        "threshold": lambda: nn.Threshold(p["threshold"], p["value"]),
    }
    if name in table:
        return table[name]()
    return _elementwise_class()(name)


def activation_flops(act: "str | ActivationWithConstants", numel: int) -> int:
    """The activation's FLOPs on ``numel`` elements (its constants do not change the count)."""
    return ACTIVATION_FLOPS[activation_name(act)] * numel


def _pair(v: Any, what: str = "[h, w]") -> Any:
    """An int (used twice) or a two-element list → a tuple; `what` names the pair in the error."""
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return tuple(v)
    raise ValueError(f"expected an integer or a pair {what}, got {v!r}")


def _positive_pair(v: tuple[int, int]) -> tuple[int, int]:
    if any((not isinstance(x, int)) or x < 1 for x in v):
        raise ValueError(f"expected positive integers, got {list(v)}")
    return v


# json_schema_input_type: the JSON Schema shows what a spec may write (an int or a pair), not the parsed tuple.
Pair = Annotated[
    tuple[int, int], BeforeValidator(_pair, json_schema_input_type=int | tuple[int, int]), AfterValidator(_positive_pair)
]


def _non_negative_pair(v: tuple[int, int]) -> tuple[int, int]:
    if any((not isinstance(x, int)) or x < 0 for x in v):
        raise ValueError(f"expected non-negative integers, got {list(v)}")
    return v


NonNegativePair = Annotated[
    tuple[int, int], BeforeValidator(_pair, json_schema_input_type=int | tuple[int, int]),
    AfterValidator(_non_negative_pair)
]


def numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


# --- convolution / pooling geometry (shared by conv.py and pooling.py) ---------------------------

def _padding(v: Any) -> Any:
    """'same' | 'valid' (any case), a non-negative int, or a pair of them → 'same' | 'valid' | (p_h, p_w)."""
    if isinstance(v, str):
        if v.lower() in ("same", "valid"):
            return v.lower()
        raise ValueError(f"padding must be 'same', 'valid', an integer or a pair [h, w], got '{v}'")
    if isinstance(v, int) and not isinstance(v, bool):
        v = (v, v)
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        if min(v) < 0:
            raise ValueError(f"padding must not be negative, got {list(v)}")
        return tuple(v)
    raise ValueError(f"padding must be 'same', 'valid', an integer or a pair [h, w], got {v!r}")


def _padding_1d(v: Any) -> Any:
    """'same' | 'valid' | 'causal' (any case) or a non-negative int."""
    if isinstance(v, str):
        if v.lower() in ("same", "valid", "causal"):
            return v.lower()
        raise ValueError(f"padding must be 'same', 'valid', 'causal' or an integer, got '{v}'")
    if isinstance(v, int) and not isinstance(v, bool):
        if v < 0:
            raise ValueError(f"padding must not be negative, got {v}")
        return v
    raise ValueError(f"padding must be 'same', 'valid', 'causal' or an integer, got {v!r}")


Padding = Annotated[
    Literal["same", "valid"] | tuple[int, int],
    BeforeValidator(_padding, json_schema_input_type=Literal["same", "valid"] | int | tuple[int, int]),
]
Padding1d = Annotated[Literal["same", "valid", "causal"] | int, BeforeValidator(_padding_1d)]
PoolPadding = Annotated[Literal["same", "valid"], BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v)]


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Keras/TensorFlow 'same' padding of one axis as (before, after): the output has ceil(size/stride)
    positions; the total padding needed for that is split with the odd element after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def window_out(size: int, kernel: int, stride: int, dilation: int = 1, pad_total: int = 0) -> int:
    """Positions of a sliding window: floor((size + pad_total − dilation·(kernel−1) − 1) / stride) + 1."""
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def fmt_shape(s: tuple[int, ...]) -> str:
    """A shape as Python writes a tuple: (64,), (3, 32, 32)."""
    return str(tuple(s))


def sequence_hint(s: tuple[int, ...]) -> str:
    """How to turn a non-sequence input into the (T, F) a recurrent/attention layer reads."""
    if len(s) > 2:
        target = [numel(s[:-1]), s[-1]]
        return (f"reshape it to (time steps, features) before this layer, e.g. {fmt_shape(s)} → {fmt_shape(tuple(target))} "
                f"with - {{type: reshape, target_shape: {target}}}")
    n = numel(s)
    return (f"make it a sequence (T, F) before this layer with a reshape, e.g. - {{type: reshape, target_shape: [{n}, 1]}} "
            f"({n} steps of 1 feature) or [1, {n}] (one step)")
