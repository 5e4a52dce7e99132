"""Activation layers: a standalone activation (the functions `activation:` applies inside dense/conv layers,
with their constants) and the learned PReLU."""
from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from ..errors import ShapeError
from .common import (
    ACTIVATION_CONSTANTS, ACTIVATION_FLOPS, AnyActivationName, activation_flops, check_activation_constants, fmt_shape,
    make_activation, numel,
)
from .registry import LayerSpec, Shape, register
from .weights import AlphaOptions

if TYPE_CHECKING:
    from torch import nn

_AXIS_ACTIVATIONS = ("softmax", "log_softmax", "glu")


@register("activation", family="core")
class Activation(LayerSpec):
    """Applies an activation function elementwise (softmax / log_softmax / glu: over one axis).

    **Formula.** y = f(x) elementwise, e.g. relu(x) = max(x, 0), sigmoid(x) = 1 / (1 + e^{−x}),
    gelu(x) = x·Φ(x) (exact, as Keras' default), leaky_relu(x) = max(x, 0) + negative_slope·min(x, 0),
    elu / celu with `alpha`, relu6(x) = min(max(x, 0), 6), hard_sigmoid(x) = relu6(x + 3) / 6,
    hard_silu = hard_swish(x) = x·hard_sigmoid(x), softsign(x) = x / (1 + |x|), log_sigmoid(x) =
    −softplus(−x), hard_tanh(x) = clip(x, −1, 1), mish(x) = x·tanh(softplus(x)), hard_shrink(x) = x if |x| >
    threshold else 0, soft_shrink(x) = x − sign(x)·threshold if |x| > threshold else 0, tanh_shrink(x) =
    x − tanh(x), threshold(x) = x if x > threshold else value, squareplus(x) = (x + √(x² + 4)) / 2,
    sparse_plus / sparse_sigmoid as in Keras, exponential(x) = eˣ. softmax over axis a: y_i = e^{x_i} /
    Σ_j e^{x_j} (j along a); log_softmax = log of it; glu splits axis a into halves (u, v): y = u·sigmoid(v).

    Conventions: **leaky_relu** keeps PyTorch's slope 0.01 by default (a spec written before this
    parameter existed keeps its meaning); Keras' `activation="leaky_relu"` uses 0.2 and its
    `layers.LeakyReLU()` 0.3, so set `negative_slope` when porting. **hard_sigmoid** is Keras 3's and
    PyTorch's relu6(x + 3)/6 (slope 1/6); Keras 2 / tf.keras used clip(0.2·x + 0.5, 0, 1), which differs.
    Inside dense/conv layers `activation: leaky_relu` uses the same default constants, and the mapping
    form sets them there: `activation: {name: leaky_relu, negative_slope: 0.2}` (keys `negative_slope`,
    `alpha`, `threshold`, with the same meaning and defaults as here); glu and threshold exist only as
    this layer.

    **Shapes.** any shape → the same shape, except glu: the `axis` size halves (it must be even). No
    parameters.

    **FLOPs** (per sample): ACTIVATION_FLOPS[activation] per output element: 0 for linear, 1 for the
    elementwise functions, 2 for glu (sigmoid and product), 3 for softmax / log_softmax (exp, sum, divide).

    **Equivalents.** PyTorch `nn.ReLU()`, `nn.LeakyReLU(negative_slope)`, `nn.Softmax(dim)`, `nn.GLU(dim)`,
    `nn.Threshold(threshold, value)`, …; Keras `layers.Activation(activation)`, `layers.LeakyReLU(negative_slope)`,
    `layers.ReLU(max_value=6)`, `layers.ELU(alpha)`, `layers.Softmax(axis)`, `keras.activations.threshold(x,
    threshold, default_value)`.
    """

    example = "- {type: activation, activation: leaky_relu, negative_slope: 0.2}"
    example_inputs = [(4, 10)]

    def mask_mode(self, in_shapes: list[Shape]) -> str:
        """Elementwise, or softmax over the features, keeps a padding mask; a softmax over time would mix padding in."""
        last = self.activation not in _AXIS_ACTIVATIONS or self.axis % len(in_shapes[0]) == len(in_shapes[0]) - 1
        return "keep" if last else "refuse"

    activation: AnyActivationName = Field(description="Activation function: " + ", ".join(ACTIVATION_FLOPS) + ".")
    axis: int = Field(default=-1, description="The axis softmax/log_softmax normalise over and glu splits, counted "
                      "over the per-sample axes (0 = first after the batch); only allowed with those three.")
    negative_slope: float | None = Field(default=None, description="leaky_relu's slope for x < 0 (default 0.01, "
                                         "PyTorch's; Keras' activation uses 0.2).")
    alpha: float | None = Field(default=None, description="elu's / celu's α (default 1.0, as in Keras and PyTorch).")
    threshold: float | None = Field(default=None, description="threshold's cut (required there), hard_shrink's / "
                                    "soft_shrink's λ (default 0.5, as in Keras and PyTorch).")
    value: float | None = Field(default=None, description="threshold's replacement for x ≤ threshold (required "
                                "there; Keras' default_value).")

    @model_validator(mode="after")
    def _params_fit_the_activation(self):
        if self.axis != -1 and self.activation not in _AXIS_ACTIVATIONS:
            raise ValueError(
                f"axis only applies to {', '.join(_AXIS_ACTIVATIONS)}, got activation '{self.activation}' "
                f"with axis {self.axis}"
            )
        check_activation_constants(self.activation, {p: getattr(self, p) for p in ACTIVATION_CONSTANTS})
        return self

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (s,) = in_shapes
        if not -len(s) <= self.axis < len(s):
            raise ShapeError(f"axis {self.axis} is out of range for an input of shape {fmt_shape(s)}",
                             hint=f"use an axis in [{-len(s)}, {len(s) - 1}] (the batch axis is not counted)")
        if self.activation != "glu":
            return tuple(s)
        ax = self.axis % len(s)
        if s[ax] % 2:
            raise ShapeError(f"glu splits axis {self.axis} into two halves, but it has odd size {s[ax]} "
                             f"(input {fmt_shape(s)})", hint="make that axis even, e.g. with the previous layer's units")
        return (*s[:ax], s[ax] // 2, *s[ax + 1:])

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        from torch import nn

        dim = self.axis if self.axis < 0 else self.axis + 1  # + 1: the batch axis
        if self.activation in ("softmax", "log_softmax"):
            return (nn.Softmax if self.activation == "softmax" else nn.LogSoftmax)(dim=dim)
        return make_activation(self.activation, negative_slope=self.negative_slope, alpha=self.alpha,
                               threshold=self.threshold, value=self.value, axis=dim)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return activation_flops(self.activation, numel(out_shape))


@cache
def _prelu_class() -> type:
    import torch
    import torch.nn.functional as F
    from torch import nn

    class PReLU(nn.Module):
        """max(x, 0) + α·min(x, 0) with a learned α broadcast over the shared axes."""

        def __init__(self, alpha_shape: tuple[int, ...], init: float) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.full(alpha_shape, float(init)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, *S); weight broadcasts as (*S with 1s)
            return F.relu(x) - self.weight * F.relu(-x)

        def extra_repr(self) -> str:
            return f"alpha_shape={tuple(self.weight.shape)}"

    return PReLU


@register("prelu", family="core")
class PReLU(AlphaOptions):
    """Parametric ReLU: a leaky ReLU whose negative slope α is learned (per element, or shared over axes).

    **Formula.** y = max(x, 0) + α ⊙ min(x, 0) (He et al. 2015), α broadcast over the `shared_axes`.

    **Shapes.** any shape S → S. Parameters: numel(S) with the shared axes counted as 1; e.g. a (C, H, W)
    image with shared_axes [1, 2] has one α per channel (C parameters), as PyTorch's `nn.PReLU(C)`.

    **FLOPs** (per sample): 2 per element (a comparison and a product).

    **Equivalents.** PyTorch `nn.PReLU(num_parameters, init)` (one α, or one per channel: shared_axes = every
    axis but 0); Keras `layers.PReLU(alpha_initializer=Constant(alpha_init), shared_axes=[a + 1 for a in
    shared_axes])` (Keras counts the batch axis, and initialises α to 0, i.e. starts as a ReLU;
    `alpha_initializer: zeros` here).
    """

    masking = "keep"  # per step and per element: a padding mask passes through

    example = "- {type: prelu, shared_axes: [1, 2]}"
    example_inputs = [(4, 5, 5)]

    shared_axes: list[int] = Field(default_factory=list, description="Per-sample axes (0 = first after the batch) "
                                   "that share one α; default none: one α per element, as in Keras.")
    alpha_init: float = Field(default=0.25, description="Initial α (0.25: He et al. and PyTorch; Keras starts "
                              "from 0); alpha_initializer replaces it.")

    @model_validator(mode="after")
    def _one_initial_alpha(self) -> "PReLU":
        if self.alpha_initializer is not None and "alpha_init" in self.model_fields_set:
            raise ValueError("give alpha_init or alpha_initializer, not both (alpha_init: c is alpha_initializer: "
                             "{name: constant, value: c})")
        return self

    def _alpha_shape(self, s: Shape) -> Shape:
        for a in self.shared_axes:
            if not 0 <= a < len(s):
                raise ShapeError(f"shared axis {a} is out of range for an input of shape {fmt_shape(s)}",
                                 hint=f"use axes in [0, {len(s) - 1}] (0-based, the batch axis is not counted)")
        return tuple(1 if i in self.shared_axes else d for i, d in enumerate(s))

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        self._alpha_shape(in_shapes[0])
        return tuple(in_shapes[0])

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        return _prelu_class()(self._alpha_shape(in_shapes[0]), self.alpha_init)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return 2 * numel(out_shape)
