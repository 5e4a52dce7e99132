"""Pieces shared by layer families: bounded sizes and counts, activation names, Keras-style int-or-pair
arguments.

``Size`` (1 … 2**31 − 1) and ``Count`` (1 … 256) come from :mod:`layerforge.limits`: use ``Count`` for a
repeat count (stacked layers, heads), whose cost grows with its value even when nothing is allocated.
Any other integer parameter is bounded by ``LayerSpec`` itself (±2**31 − 1)."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator

from ..limits import Count, Size  # noqa: F401  (re-exported for the families)
from ..text import suggest

# name → FLOPs per element (see docs/flops.md). torch modules are made by `make_activation`.
ACTIVATION_FLOPS: dict[str, int] = {
    "linear": 0, "relu": 1, "leaky_relu": 1, "elu": 1, "selu": 1, "gelu": 1, "silu": 1, "swish": 1,
    "tanh": 1, "sigmoid": 1, "softplus": 1, "softmax": 3, "log_softmax": 3, "mish": 1, "hard_sigmoid": 1,
}


def _check_activation(v: Any) -> str:
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
    return name


ActivationName = Annotated[str, BeforeValidator(_check_activation)]


def make_activation(name: str):
    """The torch module for an activation name (identity for 'linear')."""
    from torch import nn

    table = {
        "linear": nn.Identity, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "selu": nn.SELU,
        "gelu": nn.GELU, "silu": nn.SiLU, "swish": nn.SiLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
        "softplus": nn.Softplus, "mish": nn.Mish, "hard_sigmoid": nn.Hardsigmoid,
        "softmax": lambda: nn.Softmax(dim=-1), "log_softmax": lambda: nn.LogSoftmax(dim=-1),
    }
    return table[name]()


def activation_flops(name: str, numel: int) -> int:
    return ACTIVATION_FLOPS[name] * numel


def _pair(v: Any) -> Any:
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return tuple(v)
    raise ValueError(f"expected an integer or a pair [h, w], got {v!r}")


def _positive_pair(v: tuple[int, int]) -> tuple[int, int]:
    if any((not isinstance(x, int)) or x < 1 for x in v):
        raise ValueError(f"expected positive integers, got {list(v)}")
    return v


# json_schema_input_type: the JSON Schema shows what a spec may write (an int or a pair), not the parsed tuple.
Pair = Annotated[
    tuple[int, int], BeforeValidator(_pair, json_schema_input_type=int | tuple[int, int]), AfterValidator(_positive_pair)
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
    """'same' | 'valid' (any case) or a non-negative int."""
    if isinstance(v, str):
        if v.lower() in ("same", "valid"):
            return v.lower()
        raise ValueError(f"padding must be 'same', 'valid' or an integer, got '{v}'")
    if isinstance(v, int) and not isinstance(v, bool):
        if v < 0:
            raise ValueError(f"padding must not be negative, got {v}")
        return v
    raise ValueError(f"padding must be 'same', 'valid' or an integer, got {v!r}")


Padding = Annotated[
    Literal["same", "valid"] | tuple[int, int],
    BeforeValidator(_padding, json_schema_input_type=Literal["same", "valid"] | int | tuple[int, int]),
]
Padding1d = Annotated[Literal["same", "valid"] | int, BeforeValidator(_padding_1d)]
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
