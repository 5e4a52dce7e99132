"""Convolutions over sequences (conv1d) and images (conv2d), channels first.

Both share one geometry (``_Conv``): per spatial axis the output has
floor((size + padding − dilation·(kernel − 1) − 1) / stride) + 1 positions, and ``padding: same`` follows
Keras/TensorFlow (ceil(size / stride) positions, the odd padding element after), so a spec ported from
Keras keeps its shapes for any stride.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field, PositiveInt, model_validator

from ..errors import ShapeError
from .common import (
    ActivationName, Pair, Padding, Padding1d, activation_flops, fmt_shape, make_activation, numel, same_padding,
    window_out,
)
from .registry import LayerSpec, Shape, register
from .weights import KernelOptions

if TYPE_CHECKING:
    from torch import nn


class _Conv(LayerSpec):
    """Shared shape rule, module and FLOPs of conv1d/conv2d; subclasses declare the fields."""

    spatial_axes: ClassVar[tuple[str, ...]] = ()  # names of the spatial axes, e.g. ("H", "W")
    # fields (declared by the subclasses): filters, kernel_size, strides, padding, dilation_rate, groups,
    # activation, use_bias

    @model_validator(mode="after")
    def _groups_divide_filters(self):
        if self.filters % self.groups:
            raise ValueError(f"groups ({self.groups}) must divide filters ({self.filters})")
        return self

    def _channels(self, c: int) -> tuple[int, int]:
        """(output channels, groups) for C input channels; depthwise layers derive both from C."""
        return self.filters, self.groups

    # per-axis tuples, whatever the field types
    def _tuple(self, v: int | tuple[int, ...]) -> tuple[int, ...]:
        return (v,) * len(self.spatial_axes) if isinstance(v, int) else tuple(v)

    def _geometry(self, spatial: Shape) -> tuple[list[int], list[tuple[int, int]]]:
        """Output size and (before, after) padding of every spatial axis."""
        ks, ss, ds = self._tuple(self.kernel_size), self._tuple(self.strides), self._tuple(self.dilation_rate)
        outs, pads = [], []
        for size, k, s, d in zip(spatial, ks, ss, ds):
            if self.padding == "same":
                pad = same_padding(size, k, s, d)
            elif self.padding == "causal":  # conv1d only: every tap looks back, y[t] reads x[≤ t·strides]
                pad = (d * (k - 1), 0)
            elif self.padding == "valid":
                pad = (0, 0)
            else:
                p = self._tuple(self.padding)[len(pads)]
                pad = (p, p)
            outs.append(window_out(size, k, s, d, sum(pad)))
            pads.append(pad)
        return outs, pads

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (s,) = in_shapes
        want = "(C, " + ", ".join(self.spatial_axes) + ")"
        if len(s) != len(self.spatial_axes) + 1:
            raise ShapeError(f"{self.type} needs {want}, got {fmt_shape(s)}", hint=self._rank_hint(s, want))
        c = s[0]
        filters, groups = self._channels(c)
        if c % groups or filters % groups:
            raise ShapeError(
                f"groups={groups} must divide both the input channels ({c}) and filters ({filters})",
                hint="choose groups among the common divisors of the two",
            )
        outs, _ = self._geometry(s[1:])
        if min(outs) < 1:
            ks, ds = self._tuple(self.kernel_size), self._tuple(self.dilation_rate)
            span = "x".join(str(d * (k - 1) + 1) for k, d in zip(ks, ds))
            dilated = f" (dilated span {span})" if max(ds) > 1 else ""
            raise ShapeError(
                f"the {'x'.join(map(str, ks))} kernel{dilated} does not fit the "
                f"{'x'.join(map(str, s[1:]))} input with padding {self.padding!r}",
                hint="use padding: same, a smaller kernel or dilation, or a larger input",
            )
        return (filters, *outs)

    def _rank_hint(self, s: Shape, want: str) -> str:
        n = numel(s)
        side = math.isqrt(n)
        if len(self.spatial_axes) == 2 and len(s) == 1 and side * side == n:
            example = f" (e.g. - {{type: reshape, target_shape: [1, {side}, {side}]}})"
        elif len(self.spatial_axes) == 1 and len(s) == 1:
            example = f" (e.g. - {{type: reshape, target_shape: [1, {n}]}})"
        else:
            example = ""
        other = "conv1d for sequences (C, L)" if len(self.spatial_axes) == 2 else "conv2d for images (C, H, W)"
        return f"reshape or flatten the input to {want} first{example}, or use {other}"

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        from torch import nn

        s = in_shapes[0]
        _, pads = self._geometry(s[1:])
        filters, groups = self._channels(s[0])
        conv_cls, pad_cls = {1: (nn.Conv1d, nn.ZeroPad1d), 2: (nn.Conv2d, nn.ZeroPad2d)}[len(self.spatial_axes)]
        symmetric = all(a == b for a, b in pads)
        conv = conv_cls(
            s[0], filters, self._tuple(self.kernel_size), stride=self._tuple(self.strides),
            padding=tuple(a for a, _ in pads) if symmetric else 0, dilation=self._tuple(self.dilation_rate),
            groups=groups, bias=self.use_bias,
        )
        parts: list[nn.Module] = []
        if not symmetric:  # 'same' with an odd total, or 'causal': pad explicitly, last axis first as F.pad wants
            parts.append(pad_cls(tuple(p for pair in reversed(pads) for p in pair)))
        parts.append(conv)
        if self.activation != "linear":
            parts.append(make_activation(self.activation))
        return conv if len(parts) == 1 else nn.Sequential(*parts)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        c = in_shapes[0][0]
        window = (c // self._channels(c)[1]) * numel(self._tuple(self.kernel_size))
        out = numel(out_shape)
        return 2 * window * out + (out if self.use_bias else 0) + activation_flops(self.activation, out)


@register("conv1d", family="conv")
class Conv1D(_Conv, KernelOptions):
    """1-D convolution over a channels-first sequence: (C, L) → (filters, L_out).

    **Formula.** For input x ∈ ℝ^{C×L}, kernel W ∈ ℝ^{filters×(C/groups)×k} and bias b:
    y[o, t] = f(b[o] + Σ_{c ∈ group(o)} Σ_{j<k} W[o, c, j] · x_pad[c, t·stride + j·dilation_rate]),
    where x_pad is x zero-padded per `padding` (`causal`: d·(k − 1) zeros before the start only, so y[t]
    never reads a later step, as in WaveNet). With `groups` > 1 the channels are split into groups
    convolved separately (groups = C = filters is a depthwise convolution).

    **Shapes.** input (C, L) → output (filters, L_out), L_out = floor((L + pad − dilation_rate·(k−1) − 1) /
    strides) + 1 (`same`: ceil(L / strides); `causal`: the `same` length for strides 1). Note the axis order: a time-first sequence (T, F) is read as C = T channels of length F;
    `permute` it with `dims: [1, 0]` first to convolve over time. Parameters: filters·(C/groups)·k
    (+ filters with bias).

    **FLOPs** (per sample): 2·(C/groups)·k·filters·L_out (every window position, padding included)
    + filters·L_out for the bias + the activation's cost on filters·L_out elements.

    **Equivalents.** PyTorch `nn.Conv1d(C, filters, k, stride, padding, dilation, groups)` (+ `nn.ZeroPad1d`
    for odd `same` and for `causal` padding); Keras `layers.Conv1D(filters, k, strides, padding,
    dilation_rate=…, groups=…, data_format="channels_first")` (padding="causal" alike).
    """

    spatial_axes = ("L",)
    example = "- {type: conv1d, filters: 16, kernel_size: 3, padding: same, activation: relu}"
    example_inputs = [(8, 20)]

    filters: PositiveInt = Field(description="Number of output channels.")
    kernel_size: PositiveInt = Field(description="Length of the convolution window.")
    strides: PositiveInt = Field(default=1, description="Step between windows.")
    padding: Padding1d = Field(
        default="valid", description="'valid' (none), 'same' (Keras: output length ceil(L/strides)), 'causal' "
        "(dilation_rate·(k−1) zeros before the start only) or zeros per end."
    )
    dilation_rate: PositiveInt = Field(default=1, description="Spacing between kernel taps.")
    groups: PositiveInt = Field(default=1, description="Channel groups convolved separately; divides C and filters "
                                "(groups = C = filters: depthwise).")
    activation: ActivationName = Field(default="linear", description="Activation applied after the convolution.")
    use_bias: bool = Field(default=True, description="Add a learned bias per filter.")


@register("conv2d", family="conv")
class Conv2D(_Conv, KernelOptions):
    """2-D convolution over a channels-first image: (C, H, W) → (filters, H_out, W_out).

    **Formula.** For input x ∈ ℝ^{C×H×W}, kernel W ∈ ℝ^{filters×(C/groups)×k_h×k_w} and bias b:
    y[o, i, j] = f(b[o] + Σ_{c ∈ group(o)} Σ_{u<k_h} Σ_{v<k_w}
    W[o, c, u, v] · x_pad[c, i·s_h + u·d_h, j·s_w + v·d_w]), where x_pad is x zero-padded per `padding`.

    **Shapes.** input (C, H, W) → output (filters, H_out, W_out), H_out = floor((H + pad_h − d_h·(k_h−1) −
    1) / s_h) + 1 (same for W). Parameters: filters·(C/groups)·k_h·k_w (+ filters with bias); e.g.
    3 → 32 channels with a 3×3 kernel: 32·3·9 + 32 = 896.

    **FLOPs** (per sample): 2·(C/groups)·k_h·k_w·filters·H_out·W_out (every window position, padding
    included) + filters·H_out·W_out for the bias + the activation's cost on the output elements.

    **Equivalents.** PyTorch `nn.Conv2d(C, filters, (k_h, k_w), stride, padding, dilation, groups)`
    (+ `nn.ZeroPad2d` for uneven `same` padding); Keras `layers.Conv2D(filters, kernel_size, strides,
    padding, dilation_rate=…, groups=…, data_format="channels_first")`.
    """

    spatial_axes = ("H", "W")
    example = "- {type: conv2d, filters: 32, kernel_size: 3, padding: same, activation: relu}"
    example_inputs = [(3, 16, 16)]

    filters: PositiveInt = Field(description="Number of output channels.")
    kernel_size: Pair = Field(description="Window size: an int or [k_h, k_w].")
    strides: Pair = Field(default=(1, 1), description="Step between windows: an int or [s_h, s_w].")
    padding: Padding = Field(
        default="valid",
        description="'valid' (none), 'same' (Keras: output ceil(size/strides)), or zeros per side: int or [p_h, p_w].",
    )
    dilation_rate: Pair = Field(default=(1, 1), description="Spacing between kernel taps: an int or [d_h, d_w].")
    groups: PositiveInt = Field(default=1, description="Channel groups convolved separately; divides C and filters "
                                "(groups = C = filters: depthwise).")
    activation: ActivationName = Field(default="linear", description="Activation applied after the convolution.")
    use_bias: bool = Field(default=True, description="Add a learned bias per filter.")
