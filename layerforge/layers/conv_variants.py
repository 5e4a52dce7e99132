"""Convolution variants: depthwise and depthwise-separable 2-D convolutions, and transposed
("deconvolution") 1-D / 2-D convolutions, channels first.

Depthwise layers reuse conv.py's geometry (``_Conv``) with groups = C derived from the input. The
transposed convolutions follow Keras' output sizes: `valid` gives (L − 1)·strides + max(k_d, strides)
positions and `same` gives L·strides, where k_d = dilation_rate·(k − 1) + 1 (other sizes with
output_padding); `same` crops the full transposed output by total = max(k_d − strides, 0), total // 2 at
the start and the rest at the end, which makes it the exact adjoint of conv's `same` (odd padding element
after, as TensorFlow/JAX).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, NonNegativeInt, PositiveInt, ValidationInfo, field_validator, model_validator

from ..errors import ShapeError
from .common import (
    ActivationName, NonNegativePair, Pair, Padding, PoolPadding, activation_flops, fmt_shape, make_activation, numel,
)
from .conv import _Conv
from .registry import Shape, register
from .resize import crop_module
from .weights import DepthwiseOptions, KernelOptions, SeparableOptions

if TYPE_CHECKING:
    from torch import nn


@register("depthwise_conv2d", family="conv")
class DepthwiseConv2D(_Conv, DepthwiseOptions):
    """Depthwise 2-D convolution: each input channel convolved with its own `depth_multiplier` kernels.

    **Formula.** For input x ∈ ℝ^{C×H×W}, kernels W ∈ ℝ^{(C·M)×1×k_h×k_w} (M = depth_multiplier):
    y[c·M + m, i, j] = f(b[c·M + m] + Σ_{u<k_h} Σ_{v<k_w} W[c·M + m, 0, u, v] · x_pad[c, i·s_h + u·d_h,
    j·s_w + v·d_w]): no sum over channels. Padding and geometry as conv2d (`same` is Keras').

    **Shapes.** input (C, H, W) → output (C·M, H_out, W_out), H_out as conv2d. Parameters: C·M·k_h·k_w
    (+ C·M with bias).

    **FLOPs** (per sample): 2·k_h·k_w·C·M·H_out·W_out + C·M·H_out·W_out for the bias + the activation's cost.

    **Equivalents.** PyTorch `nn.Conv2d(C, C·M, kernel_size, stride, padding, dilation, groups=C)`; Keras
    `layers.DepthwiseConv2D(kernel_size, strides, padding, depth_multiplier=M, data_format="channels_first")`
    (its kernel (k_h, k_w, C, M) is torch's weight permuted (2, 3, 0, 1) and reshaped to (C·M, 1, k_h, k_w)).
    """

    spatial_axes = ("H", "W")
    example = "- {type: depthwise_conv2d, kernel_size: 3, depth_multiplier: 2, padding: same}"
    example_inputs = [(3, 8, 8)]

    kernel_size: Pair = Field(description="Window size: an int or [k_h, k_w].")
    strides: Pair = Field(default=(1, 1), description="Step between windows: an int or [s_h, s_w].")
    padding: Padding = Field(default="valid", description="'valid' (none), 'same' (Keras: output ceil(size/strides)), "
                             "or zeros per side: int or [p_h, p_w].")
    dilation_rate: Pair = Field(default=(1, 1), description="Spacing between kernel taps: an int or [d_h, d_w].")
    depth_multiplier: PositiveInt = Field(default=1, description="Output channels per input channel (M).")
    activation: ActivationName = Field(default="linear", description="Activation applied after the convolution.")
    use_bias: bool = Field(default=True, description="Add a learned bias per output channel.")

    @model_validator(mode="after")
    def _groups_divide_filters(self):  # replaces _Conv's check: filters and groups follow from C
        return self

    def _channels(self, c: int) -> tuple[int, int]:
        return c * self.depth_multiplier, c


@register("separable_conv2d", family="conv")
class SeparableConv2D(SeparableOptions):
    """Depthwise-separable 2-D convolution: a depthwise convolution, then a 1×1 (pointwise) convolution.

    **Formula.** d = depthwise(x) with C·M kernels k_h×k_w and no bias (see depthwise_conv2d), then
    y[o, i, j] = f(b[o] + Σ_{q < C·M} P[o, q] · d[q, i, j]) with the pointwise matrix P ∈ ℝ^{filters×(C·M)}.

    **Shapes.** input (C, H, W) → output (filters, H_out, W_out), H_out as conv2d. Parameters:
    C·M·k_h·k_w + C·M·filters (+ filters with bias); e.g. 16 → 32 channels, 3×3, M = 1: 144 + 512 + 32 = 688
    instead of conv2d's 4,640.

    **FLOPs** (per sample, N = H_out·W_out): 2·k_h·k_w·C·M·N (depthwise) + 2·C·M·filters·N (pointwise)
    + filters·N for the bias + the activation's cost on filters·N elements.

    **Equivalents.** PyTorch `nn.Conv2d(C, C·M, k, stride, padding, dilation, groups=C, bias=False)` then
    `nn.Conv2d(C·M, filters, 1)`; Keras `layers.SeparableConv2D(filters, kernel_size, strides, padding,
    depth_multiplier=M, data_format="channels_first")` (depthwise_kernel (k_h, k_w, C, M), pointwise_kernel
    (1, 1, C·M, filters)).
    """

    example = "- {type: separable_conv2d, filters: 8, kernel_size: 3, padding: same, activation: relu}"
    example_inputs = [(4, 8, 8)]

    filters: PositiveInt = Field(description="Number of output channels.")
    kernel_size: Pair = Field(description="Depthwise window size: an int or [k_h, k_w].")
    strides: Pair = Field(default=(1, 1), description="Step between windows: an int or [s_h, s_w].")
    padding: Padding = Field(default="valid", description="'valid' (none), 'same' (Keras: output ceil(size/strides)), "
                             "or zeros per side: int or [p_h, p_w].")
    dilation_rate: Pair = Field(default=(1, 1), description="Spacing between kernel taps: an int or [d_h, d_w].")
    depth_multiplier: PositiveInt = Field(default=1, description="Depthwise output channels per input channel (M).")
    activation: ActivationName = Field(default="linear", description="Activation applied after the pointwise step.")
    use_bias: bool = Field(default=True, description="Add a learned bias per output channel (pointwise step only).")

    def _depthwise(self) -> DepthwiseConv2D:
        return DepthwiseConv2D(type="depthwise_conv2d", kernel_size=self.kernel_size, strides=self.strides,
                               padding=self.padding, dilation_rate=self.dilation_rate,
                               depth_multiplier=self.depth_multiplier, use_bias=False)

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        return (self.filters, *self._depthwise().output_shape(in_shapes)[1:])

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        from torch import nn

        m = in_shapes[0][0] * self.depth_multiplier
        parts = [self._depthwise().build(in_shapes), nn.Conv2d(m, self.filters, 1, bias=self.use_bias)]
        if self.activation != "linear":
            parts.append(make_activation(self.activation))
        return nn.Sequential(*parts)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        dw = self._depthwise()
        mid = dw.output_shape(in_shapes)
        n, out = numel(out_shape[1:]), numel(out_shape)
        return (dw.flops(in_shapes, mid) + 2 * mid[0] * self.filters * n + (out if self.use_bias else 0)
                + activation_flops(self.activation, out))


_OUTPUT_PADDING = ("Extra output positions per axis, to pick among the input sizes a strided conv maps to the same "
                   "size (Keras' and PyTorch's output_padding); null: Keras' sizes above. Given, the size is "
                   "(L − 1)·strides + k_d + output_padding ('valid') or (L − 1)·strides + k_d mod 2 + output_padding "
                   "('same'); it must be smaller than strides or dilation_rate.")


class _ConvTranspose(KernelOptions):
    """Shared geometry, module and FLOPs of conv1d_transpose / conv2d_transpose (fields in the subclasses)."""

    spatial_axes: ClassVar[tuple[str, ...]] = ()

    def _tuple(self, v: Any) -> tuple[int, ...]:
        return (v,) * len(self.spatial_axes) if isinstance(v, int) else tuple(v)

    @field_validator("output_padding", check_fields=False)
    @classmethod
    def _output_padding_below_stride(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None or "strides" not in info.data or "dilation_rate" not in info.data:
            return v
        n = len(cls.spatial_axes)
        as_tuple = (lambda x: (x,) * n if isinstance(x, int) else tuple(x))
        for op, s, d in zip(as_tuple(v), as_tuple(info.data["strides"]), as_tuple(info.data["dilation_rate"])):
            if op >= max(s, d):
                raise ValueError(f"output_padding {op} must be smaller than the larger of strides ({s}) and dilation_rate ({d}) "
                                 "(PyTorch's rule; Keras requires it smaller than strides)")
        return v

    def _geometry(self, spatial: Shape) -> list[tuple[int, int, int, int]]:
        """Per axis: (output size, torch padding, torch output_padding, elements cropped at the end).

        The scatter output has full = (size − 1)·s + k_d positions (zeros beyond). The layer's output is the
        window of Keras' size n starting at ⌊(full − n) / 2⌋ when full ≥ n (the odd element cropped at the
        end, as TF/JAX), and the whole scatter output followed by n − full zero positions (torch's
        output_padding) when n > full."""
        out = []
        pads = self._tuple(self.output_padding) if self.output_padding is not None else (None,) * len(spatial)
        for size, k, s, d, op in zip(spatial, self._tuple(self.kernel_size), self._tuple(self.strides),
                                     self._tuple(self.dilation_rate), pads):
            kd = d * (k - 1) + 1
            full = (size - 1) * s + kd
            if op is None:  # Keras' sizes without output_padding
                n = (size - 1) * s + max(kd, s) if self.padding == "valid" else size * s
            else:  # Keras' sizes with it
                n = full + op if self.padding == "valid" else (size - 1) * s + kd % 2 + op
            start = max((full - n) // 2, 0)
            out.append((n, start, max(n + 2 * start - full, 0), max(full - 2 * start - n, 0)))
        return out

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (s,) = in_shapes
        want = "(C, " + ", ".join(self.spatial_axes) + ")"
        if len(s) != len(self.spatial_axes) + 1:
            raise ShapeError(f"{self.type} needs {want}, got {fmt_shape(s)}",
                             hint=f"reshape the input to {want} first")
        sizes = [g[0] for g in self._geometry(s[1:])]
        if min(sizes) < 1:
            raise ShapeError(f"output_padding {self.output_padding} with padding 'same' leaves no output position for "
                             f"the input {fmt_shape(s)} (Keras' size (L − 1)·strides + k_d mod 2 + output_padding)",
                             hint="use a larger output_padding or padding 'valid'")
        return (self.filters, *sizes)

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        from torch import nn

        s = in_shapes[0]
        geo = self._geometry(s[1:])
        cls = nn.ConvTranspose1d if len(self.spatial_axes) == 1 else nn.ConvTranspose2d
        conv = cls(s[0], self.filters, self._tuple(self.kernel_size), stride=self._tuple(self.strides),
                   padding=tuple(g[1] for g in geo), output_padding=tuple(g[2] for g in geo),
                   dilation=self._tuple(self.dilation_rate), bias=self.use_bias)
        parts: list[nn.Module] = [conv]
        if any(g[3] for g in geo):  # `same` with an odd total: the extra element is cropped at the end
            parts.append(crop_module(tuple((0, g[3]) for g in geo)))
        if self.activation != "linear":
            parts.append(make_activation(self.activation))
        return conv if len(parts) == 1 else nn.Sequential(*parts)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        # every input element meets every weight once (scatter form), cropped positions included
        s, out = in_shapes[0], numel(out_shape)
        return (2 * numel(s) * self.filters * numel(self._tuple(self.kernel_size)) + (out if self.use_bias else 0)
                + activation_flops(self.activation, out))


@register("conv1d_transpose", family="conv")
class Conv1DTranspose(_ConvTranspose):
    """Transposed 1-D convolution (learned upsampling) of a channels-first sequence: (C, L) → (filters, L_out).

    **Formula.** Each input position scatters a kernel: z[o, t·strides + j·dilation_rate] += W[c, o, j]·x[c, t]
    over c < C, t < L, j < k (full length (L − 1)·strides + k_d); then y = f(b + z cropped to L_out): a crop
    of T = full − L_out elements, ⌊T/2⌋ at the start (`same`: T = max(k_d − strides, 0)), or, when L_out is
    larger (output_padding, strides > k_d), z followed by zeros. It is the adjoint (gradient) of conv1d with
    the same geometry.

    **Shapes.** input (C, L) → output (filters, L_out), `valid`: L_out = (L − 1)·strides + max(k_d, strides);
    `same`: L_out = L·strides, with k_d = dilation_rate·(k − 1) + 1; with output_padding p: `valid`
    (L − 1)·strides + k_d + p, `same` (L − 1)·strides + (k_d mod 2) + p (Keras' sizes). Parameters:
    C·filters·k (+ filters).

    **FLOPs** (per sample): 2·C·L·k·filters (every input element times every tap, cropped positions included;
    the zero positions output_padding adds receive none) + filters·L_out for the bias + the activation's cost.

    **Equivalents.** PyTorch `nn.ConvTranspose1d(C, filters, k, stride, padding, output_padding, dilation)`;
    Keras `layers.Conv1DTranspose(filters, k, strides, padding, output_padding, data_format="channels_first")`
    (kernel (k, filters, C) = torch's weight permuted (2, 1, 0)). An odd crop T leaves its odd element at
    the end, as Keras on TensorFlow/JAX and on its torch backend in Keras 3.15 (checked); older Keras
    torch backends crop it at the start. Keras refuses output_padding ≥ strides, PyTorch (and this layer) only ≥ max(strides,
    dilation_rate).
    """

    spatial_axes = ("L",)
    example = "- {type: conv1d_transpose, filters: 4, kernel_size: 3, strides: 2, output_padding: 1}"
    example_inputs = [(6, 9)]

    filters: PositiveInt = Field(description="Number of output channels.")
    kernel_size: PositiveInt = Field(description="Length of the kernel.")
    strides: PositiveInt = Field(default=1, description="Upsampling factor: the step between scattered kernels.")
    padding: PoolPadding = Field(default="valid", description="'valid' (L_out = (L−1)·strides + max(k_d, strides)) "
                                 "or 'same' (L_out = L·strides).")
    dilation_rate: PositiveInt = Field(default=1, description="Spacing between kernel taps.")
    output_padding: NonNegativeInt | None = Field(default=None, description=_OUTPUT_PADDING)
    activation: ActivationName = Field(default="linear", description="Activation applied after the convolution.")
    use_bias: bool = Field(default=True, description="Add a learned bias per filter.")


@register("conv2d_transpose", family="conv")
class Conv2DTranspose(_ConvTranspose):
    """Transposed 2-D convolution (learned upsampling) of a channels-first image: (C, H, W) → (filters, H_out, W_out).

    **Formula.** z[o, i·s_h + u·d_h, j·s_w + v·d_w] += W[c, o, u, v]·x[c, i, j] over c, i, j, u < k_h,
    v < k_w; then y = f(b + z cropped to (H_out, W_out)), per axis as conv1d_transpose: a crop of T =
    full − size_out elements, ⌊T/2⌋ at the start, or zeros appended when output_padding makes the output
    larger. The adjoint (gradient) of conv2d with the same geometry.

    **Shapes.** input (C, H, W) → output (filters, H_out, W_out), per axis `valid`: (size − 1)·s + max(k_d, s),
    `same`: size·s, with k_d = d·(k − 1) + 1; with output_padding p: `valid` (size − 1)·s + k_d + p, `same`
    (size − 1)·s + (k_d mod 2) + p (Keras' sizes). Parameters: C·filters·k_h·k_w (+ filters).

    **FLOPs** (per sample): 2·C·H·W·k_h·k_w·filters (every input element times every tap, cropped positions
    included) + filters·H_out·W_out for the bias + the activation's cost.

    **Equivalents.** PyTorch `nn.ConvTranspose2d(C, filters, kernel_size, stride, padding, output_padding,
    dilation)`; Keras `layers.Conv2DTranspose(filters, kernel_size, strides, padding, output_padding,
    data_format="channels_first")` (kernel (k_h, k_w, filters, C) = torch's weight permuted (2, 3, 1, 0));
    the odd crop and output_padding rule as conv1d_transpose.
    """

    spatial_axes = ("H", "W")
    example = "- {type: conv2d_transpose, filters: 4, kernel_size: 3, strides: 2, padding: same, activation: relu}"
    example_inputs = [(6, 5, 5)]

    filters: PositiveInt = Field(description="Number of output channels.")
    kernel_size: Pair = Field(description="Kernel size: an int or [k_h, k_w].")
    strides: Pair = Field(default=(1, 1), description="Upsampling factor per axis: an int or [s_h, s_w].")
    padding: PoolPadding = Field(default="valid", description="'valid' (size_out = (size−1)·strides + max(k_d, strides)) "
                                 "or 'same' (size_out = size·strides).")
    dilation_rate: Pair = Field(default=(1, 1), description="Spacing between kernel taps: an int or [d_h, d_w].")
    output_padding: NonNegativePair | None = Field(default=None, description=_OUTPUT_PADDING + " An int or [p_h, p_w].")
    activation: ActivationName = Field(default="linear", description="Activation applied after the convolution.")
    use_bias: bool = Field(default=True, description="Add a learned bias per filter.")
