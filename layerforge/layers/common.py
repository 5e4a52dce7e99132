"""Pieces shared by layer families: activation names, Keras-style int-or-pair arguments."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from .registry import suggest

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


Pair = Annotated[tuple[int, int], BeforeValidator(_pair), AfterValidator(_positive_pair)]


def numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
