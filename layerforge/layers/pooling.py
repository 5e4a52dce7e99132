"""Pooling: max / average over sliding windows (1-D and 2-D, channels first) and global average / max pooling.

Window geometry is the convolution's (layers/common.py): `valid` drops the incomplete windows at the
end, `same` follows Keras (ceil(size / strides) windows, the odd padding element after). Padded
positions never win a max (they hold −∞) and never count in an average (Keras semantics).
"""
from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, PositiveInt

from ..errors import ShapeError
from .common import Pair, PoolPadding, fmt_shape, numel, same_padding, window_out
from .registry import LayerSpec, Shape, register

if TYPE_CHECKING:
    from torch import nn


@cache
def _avg_pool_same_class() -> type:
    """Average pooling over explicitly padded windows that divides by the number of real elements."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class AvgPoolSame(nn.Module):
        def __init__(self, kernel: tuple[int, ...], stride: tuple[int, ...], pad: tuple[int, ...]) -> None:
            super().__init__()
            self.kernel, self.stride, self.pad = kernel, stride, pad  # pad in F.pad order (last axis first)
            self.pool = F.avg_pool1d if len(kernel) == 1 else F.avg_pool2d

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, *spatial)
            summed = self.pool(F.pad(x, self.pad), self.kernel, self.stride)  # (B, C, *out): sum / window size
            ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
            share = self.pool(F.pad(ones, self.pad), self.kernel, self.stride)  # (1, 1, *out): real / window size
            return summed / share

        def extra_repr(self) -> str:
            return f"kernel_size={self.kernel}, stride={self.stride}, pad={self.pad}, count_include_pad=False"

    return AvgPoolSame


class _Pool(LayerSpec):
    """Shared shape rule, module and FLOPs of the windowed poolings; subclasses declare the fields
    `pool_size`, `strides` (None = pool_size) and `padding`."""

    spatial_axes: ClassVar[tuple[str, ...]] = ()
    mode: ClassVar[str] = "max"  # or "avg"

    def _tuple(self, v: Any) -> tuple[int, ...]:
        return (v,) * len(self.spatial_axes) if isinstance(v, int) else tuple(v)

    def _kernel(self) -> tuple[int, ...]:
        return self._tuple(self.pool_size)

    def _stride(self) -> tuple[int, ...]:
        return self._kernel() if self.strides is None else self._tuple(self.strides)

    def _geometry(self, spatial: Shape) -> tuple[list[int], list[tuple[int, int]]]:
        outs, pads = [], []
        for size, k, s in zip(spatial, self._kernel(), self._stride()):
            pad = same_padding(size, k, s) if self.padding == "same" else (0, 0)
            outs.append(window_out(size, k, s, 1, sum(pad)))
            pads.append(pad)
        return outs, pads

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (s,) = in_shapes
        want = "(C, " + ", ".join(self.spatial_axes) + ")"
        if len(s) != len(self.spatial_axes) + 1:
            raise ShapeError(f"{self.type} needs {want}, got {fmt_shape(s)}",
                             hint=f"reshape the input to {want}, or use global_avg_pool for any rank")
        outs, _ = self._geometry(s[1:])
        if min(outs) < 1:
            raise ShapeError(f"the {'x'.join(map(str, self._kernel()))} pool window does not fit the "
                             f"{'x'.join(map(str, s[1:]))} input", hint="use padding: same or a smaller pool_size")
        return (s[0], *outs)

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        from torch import nn

        _, pads = self._geometry(in_shapes[0][1:])
        k, s = self._kernel(), self._stride()
        flat = tuple(p for pair in reversed(pads) for p in pair)  # F.pad order: last axis first
        two_d = len(self.spatial_axes) == 2
        if self.mode == "max":
            pool = (nn.MaxPool2d if two_d else nn.MaxPool1d)(k, s)
            if not any(flat):
                return pool
            return nn.Sequential((nn.ConstantPad2d if two_d else nn.ConstantPad1d)(flat, float("-inf")), pool)
        if not any(flat):
            return (nn.AvgPool2d if two_d else nn.AvgPool1d)(k, s)
        return _avg_pool_same_class()(k, s, flat)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        window = numel(self._kernel())
        # max: window − 1 comparisons per output; avg: window − 1 adds + 1 divide
        return numel(out_shape) * (window - 1 if self.mode == "max" else window)


@register("maxpool2d", family="pooling")
class MaxPool2D(_Pool):
    """Max pooling over 2-D windows of a channels-first image: (C, H, W) → (C, H_out, W_out).

    **Formula.** y[c, i, j] = max_{u<k_h, v<k_w} x_pad[c, i·s_h + u, j·s_w + v], channel by channel;
    `same` padding holds −∞, so it never wins.

    **Shapes.** input (C, H, W) → output (C, H_out, W_out), H_out = floor((H − k_h) / s_h) + 1 (`valid`) or
    ceil(H / s_h) (`same`); same for W. No parameters.

    **FLOPs** (per sample): (k_h·k_w − 1) comparisons per output element, C·H_out·W_out·(k_h·k_w − 1) (the
    whole window is counted, also where it overlaps `same` padding).

    **Equivalents.** PyTorch `nn.MaxPool2d(pool_size, strides)` (+ `nn.ConstantPad2d(…, -inf)` for `same`);
    Keras `layers.MaxPooling2D(pool_size, strides, padding, data_format="channels_first")`.
    """

    spatial_axes = ("H", "W")
    mode = "max"
    example = "- {type: maxpool2d, pool_size: 2}"
    example_inputs = [(4, 9, 9)]

    pool_size: Pair = Field(default=(2, 2), description="Window size: an int or [h, w].")
    strides: Pair | None = Field(default=None, description="Step between windows (default: pool_size).")
    padding: PoolPadding = Field(default="valid", description="'valid' (drop incomplete windows) or 'same' (Keras: "
                                  "ceil(size/strides) windows, the odd padding element at the end).")


@register("avgpool2d", family="pooling")
class AvgPool2D(_Pool):
    """Average pooling over 2-D windows of a channels-first image: (C, H, W) → (C, H_out, W_out).

    **Formula.** y[c, i, j] = (1/n_ij) Σ_{u<k_h, v<k_w} x_pad[c, i·s_h + u, j·s_w + v], n_ij = the number
    of real (unpadded) elements in the window: k_h·k_w except at `same` borders, where padding is not
    counted (Keras semantics).

    **Shapes.** input (C, H, W) → output (C, H_out, W_out), H_out = floor((H − k_h) / s_h) + 1 (`valid`) or
    ceil(H / s_h) (`same`); same for W. No parameters.

    **FLOPs** (per sample): k_h·k_w per output element (k_h·k_w − 1 adds + 1 divide),
    C·H_out·W_out·k_h·k_w (the whole window is counted, also where it overlaps `same` padding).

    **Equivalents.** PyTorch `nn.AvgPool2d(pool_size, strides, count_include_pad=False)` (explicit padding
    for `same`); Keras `layers.AveragePooling2D(pool_size, strides, padding, data_format="channels_first")`.
    """

    spatial_axes = ("H", "W")
    mode = "avg"
    example = "- {type: avgpool2d, pool_size: 3, strides: 2, padding: same}"
    example_inputs = [(4, 8, 8)]

    pool_size: Pair = Field(default=(2, 2), description="Window size: an int or [h, w].")
    strides: Pair | None = Field(default=None, description="Step between windows (default: pool_size).")
    padding: PoolPadding = Field(default="valid", description="'valid' (drop incomplete windows) or 'same' (Keras: "
                                  "ceil(size/strides) windows, the odd padding element at the end).")


@register("maxpool1d", family="pooling")
class MaxPool1D(_Pool):
    """Max pooling over 1-D windows of a channels-first sequence: (C, L) → (C, L_out).

    **Formula.** y[c, t] = max_{j<k} x_pad[c, t·strides + j], channel by channel; `same` padding holds −∞.

    **Shapes.** input (C, L) → output (C, L_out), L_out = floor((L − k) / strides) + 1 (`valid`) or
    ceil(L / strides) (`same`). No parameters.

    **FLOPs** (per sample): (k − 1) comparisons per output element, C·L_out·(k − 1).

    **Equivalents.** PyTorch `nn.MaxPool1d(pool_size, strides)` (+ `nn.ConstantPad1d(…, -inf)` for `same`);
    Keras `layers.MaxPooling1D(pool_size, strides, padding, data_format="channels_first")`.
    """

    spatial_axes = ("L",)
    mode = "max"
    example = "- {type: maxpool1d, pool_size: 2}"
    example_inputs = [(4, 11)]

    pool_size: PositiveInt = Field(default=2, description="Window length.")
    strides: PositiveInt | None = Field(default=None, description="Step between windows (default: pool_size).")
    padding: PoolPadding = Field(default="valid", description="'valid' (drop incomplete windows) or 'same' (Keras: "
                                  "ceil(size/strides) windows, the odd padding element at the end).")


@register("avgpool1d", family="pooling")
class AvgPool1D(_Pool):
    """Average pooling over 1-D windows of a channels-first sequence: (C, L) → (C, L_out).

    **Formula.** y[c, t] = (1/n_t) Σ_{j<k} x_pad[c, t·strides + j], n_t = the number of real (unpadded)
    elements in the window: k except at `same` borders (Keras semantics).

    **Shapes.** input (C, L) → output (C, L_out), L_out = floor((L − k) / strides) + 1 (`valid`) or
    ceil(L / strides) (`same`). No parameters.

    **FLOPs** (per sample): k per output element (k − 1 adds + 1 divide), C·L_out·k.

    **Equivalents.** PyTorch `nn.AvgPool1d(pool_size, strides, count_include_pad=False)` (explicit padding
    for `same`); Keras `layers.AveragePooling1D(pool_size, strides, padding, data_format="channels_first")`.
    """

    spatial_axes = ("L",)
    mode = "avg"
    example = "- {type: avgpool1d, pool_size: 2, padding: same}"
    example_inputs = [(4, 11)]

    pool_size: PositiveInt = Field(default=2, description="Window length.")
    strides: PositiveInt | None = Field(default=None, description="Step between windows (default: pool_size).")
    padding: PoolPadding = Field(default="valid", description="'valid' (drop incomplete windows) or 'same' (Keras: "
                                  "ceil(size/strides) windows, the odd padding element at the end).")


@cache
def _global_pool_class() -> type:
    import torch
    from torch import nn

    class GlobalPool(nn.Module):
        """Mean or max of each channel over every spatial axis."""

        def __init__(self, mode: str, keepdims: bool) -> None:
            super().__init__()
            self.mode, self.keepdims = mode, keepdims

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, *spatial)
            dims = tuple(range(2, x.dim()))
            if self.mode == "avg":
                return x.mean(dim=dims, keepdim=self.keepdims)  # (B, C) or (B, C, 1, …)
            return x.amax(dim=dims, keepdim=self.keepdims)

        def extra_repr(self) -> str:
            return f"mode={self.mode}, keepdims={self.keepdims}"

    return GlobalPool


class _GlobalPool(LayerSpec):
    """global_avg_pool / global_max_pool: the shared shape rule, module and FLOPs."""

    mode: ClassVar[str] = "avg"

    keepdims: bool = Field(default=False, description="Keep the spatial axes as size 1: (C, 1, 1) instead of (C,) "
                           "(Keras' keepdims).")

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (s,) = in_shapes
        if len(s) < 2:
            raise ShapeError(f"{self.type} needs (C, *spatial) with at least one spatial axis, got {fmt_shape(s)}",
                             hint="the input is already one value per channel; drop this layer")
        return (s[0], *(1,) * (len(s) - 1)) if self.keepdims else (s[0],)

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        return _global_pool_class()(self.mode, self.keepdims)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        # avg: N − 1 adds + 1 divide per channel; max: N − 1 comparisons per channel
        s = in_shapes[0]
        return numel(s) - (s[0] if self.mode == "max" else 0)


@register("global_avg_pool", family="pooling")
class GlobalAvgPool(_GlobalPool):
    """Global average pooling: the mean of each channel over all its positions, (C, *spatial) → (C,).

    **Formula.** y[c] = (1/N) Σ_{p} x[c, p], over the N = numel(spatial) positions of channel c.

    **Shapes.** input (C, L) or (C, H, W) or any (C, *spatial) with at least one spatial axis → output (C,)
    (with `keepdims`: (C, 1, …, 1), the input's rank). Channels first: a time-first sequence (T, F) would
    be averaged over F, not over time. No parameters.

    **FLOPs** (per sample): C·N = every input element once (N − 1 adds + 1 divide per channel).

    **Equivalents.** PyTorch `nn.AdaptiveAvgPool2d(1)` + `nn.Flatten()` (or `x.mean(dim=(2, 3), keepdim)`);
    Keras `layers.GlobalAveragePooling2D(data_format="channels_first", keepdims)` (1-D: `GlobalAveragePooling1D`).
    """

    mode = "avg"
    example = "- {type: global_avg_pool}"
    example_inputs = [(8, 5, 5)]


@register("global_max_pool", family="pooling")
class GlobalMaxPool(_GlobalPool):
    """Global max pooling: the largest value of each channel over all its positions, (C, *spatial) → (C,).

    **Formula.** y[c] = max_{p} x[c, p], over the N = numel(spatial) positions of channel c.

    **Shapes.** input (C, *spatial) with at least one spatial axis → output (C,) (with `keepdims`:
    (C, 1, …, 1)). No parameters.

    **FLOPs** (per sample): C·(N − 1) comparisons.

    **Equivalents.** PyTorch `nn.AdaptiveMaxPool2d(1)` + `nn.Flatten()` (or `x.amax(dim=(2, 3), keepdim)`);
    Keras `layers.GlobalMaxPooling2D(data_format="channels_first", keepdims)` (1-D: `GlobalMaxPooling1D`).
    """

    mode = "max"
    example = "- {type: global_max_pool, keepdims: true}"
    example_inputs = [(8, 5, 5)]
