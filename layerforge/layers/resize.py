"""Resizing channels-first sequences (C, L) and images (C, H, W): upsampling, zero padding, cropping.

Every layer here acts on the spatial axes after the channel axis, as conv1d / conv2d read them. Keras'
1-D layers act on the steps of a channels-last (steps, features) tensor instead: the same operation on
the permuted input.
"""
from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field

from ..errors import ShapeError
from .common import Pair, fmt_shape, numel
from .registry import LayerSpec, Shape, register

if TYPE_CHECKING:
    from torch import nn

Edges = tuple[tuple[int, int], ...]  # (before, after) per spatial axis


def _edges(n_axes: int):
    """Keras' padding / cropping spellings → (before, after) per axis: an int (every side), a pair
    (1-D: [before, after]; 2-D: [h, w], symmetric per axis), or 2-D [[top, bottom], [left, right]]."""

    def parse(v: Any) -> Edges:
        def ints(x: Any) -> bool:
            return isinstance(x, (list, tuple)) and all(isinstance(i, int) and not isinstance(i, bool) for i in x)

        if isinstance(v, int) and not isinstance(v, bool):
            out = ((v, v),) * n_axes
        elif n_axes == 1 and ints(v) and len(v) == 2:
            out = (tuple(v),)
        elif n_axes == 2 and ints(v) and len(v) == 2:
            out = ((v[0], v[0]), (v[1], v[1]))
        elif n_axes == 2 and isinstance(v, (list, tuple)) and len(v) == 2 and all(ints(p) and len(p) == 2 for p in v):
            out = tuple(tuple(p) for p in v)
        else:
            want = "an integer or [before, after]" if n_axes == 1 else "an integer, [h, w] or [[top, bottom], [left, right]]"
            raise ValueError(f"expected {want}, got {v!r}")
        if min(min(p) for p in out) < 0:
            raise ValueError(f"sizes must not be negative, got {v!r}")
        return out

    return parse


Edges1d = Annotated[Edges, BeforeValidator(_edges(1), json_schema_input_type=int | tuple[int, int])]
Edges2d = Annotated[Edges, BeforeValidator(_edges(2), json_schema_input_type=int | tuple[int, int]
                                           | tuple[tuple[int, int], tuple[int, int]])]


@cache
def _crop_class() -> type:
    import torch
    from torch import nn

    class Crop(nn.Module):
        """Drops (before, after) elements of each trailing spatial axis."""

        def __init__(self, edges: Edges) -> None:
            super().__init__()
            self.edges = edges

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, *spatial)
            first = x.dim() - len(self.edges)
            for i, (a, b) in enumerate(self.edges):
                x = x.narrow(first + i, a, x.shape[first + i] - a - b)
            return x

        def extra_repr(self) -> str:
            return f"edges={self.edges}"

    return Crop


def crop_module(edges: Edges) -> "nn.Module":
    """A module cropping (before, after) elements from each of the last len(edges) axes."""
    return _crop_class()(edges)


def _check_rank(layer: LayerSpec, s: Shape, axes: tuple[str, ...]) -> None:
    if len(s) != len(axes) + 1:
        want = "(C, " + ", ".join(axes) + ")"
        raise ShapeError(f"{layer.type} needs {want}, got {fmt_shape(s)}", hint=f"reshape the input to {want} first")


class _Edges(LayerSpec):
    """zero padding / cropping: subclasses declare the `padding` or `cropping` field and `sign`."""

    spatial_axes: ClassVar[tuple[str, ...]] = ()
    sign: ClassVar[int] = 1  # +1 pads, −1 crops

    def _e(self) -> Edges:
        return self.padding if self.sign > 0 else self.cropping

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (s,) = in_shapes
        _check_rank(self, s, self.spatial_axes)
        out = tuple(n + self.sign * (a + b) for n, (a, b) in zip(s[1:], self._e()))
        if min(out) < 1:
            raise ShapeError(f"cropping {list(self._e())} removes every element of the {'x'.join(map(str, s[1:]))} input",
                             hint="crop less than each axis' size")
        return (s[0], *out)

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        from torch import nn

        if self.sign < 0:
            return crop_module(self._e())
        flat = tuple(p for pair in reversed(self._e()) for p in pair)  # F.pad order: last axis first
        return (nn.ZeroPad1d if len(self.spatial_axes) == 1 else nn.ZeroPad2d)(flat)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return 0


@register("zero_padding1d", family="reshaping")
class ZeroPadding1D(_Edges):
    """Pads a channels-first sequence with zeros at its start and end: (C, L) → (C, before + L + after).

    **Formula.** y[c, t] = x[c, t − before] for before ≤ t < before + L, else 0.

    **Shapes.** input (C, L) → output (C, L + before + after). No parameters.

    **FLOPs** 0 (a copy).

    **Equivalents.** PyTorch `nn.ZeroPad1d((before, after))`; Keras `layers.ZeroPadding1D((before, after))`
    on the channels-last (L, C) tensor (Keras pads the steps axis).
    """

    spatial_axes = ("L",)
    sign = 1
    example = "- {type: zero_padding1d, padding: [2, 1]}"
    example_inputs = [(3, 6)]

    padding: Edges1d = Field(default=1, validate_default=True, description="Zeros added: an int (both ends) or [before, after].")


@register("zero_padding2d", family="reshaping")
class ZeroPadding2D(_Edges):
    """Pads a channels-first image with zeros on its four sides: (C, H, W) → (C, H + top + bottom, W + left + right).

    **Formula.** y[c, i, j] = x[c, i − top, j − left] inside the original extent, else 0.

    **Shapes.** input (C, H, W) → output (C, H + top + bottom, W + left + right). No parameters.

    **FLOPs** 0 (a copy).

    **Equivalents.** PyTorch `nn.ZeroPad2d((left, right, top, bottom))`; Keras
    `layers.ZeroPadding2D(((top, bottom), (left, right)), data_format="channels_first")`.
    """

    spatial_axes = ("H", "W")
    sign = 1
    example = "- {type: zero_padding2d, padding: [[1, 0], [2, 2]]}"
    example_inputs = [(3, 4, 4)]

    padding: Edges2d = Field(default=1, validate_default=True, description="Zeros added: an int (every side), [h, w] "
                             "(symmetric per axis) or [[top, bottom], [left, right]].")


@register("cropping1d", family="reshaping")
class Cropping1D(_Edges):
    """Crops elements from the start and end of a channels-first sequence: (C, L) → (C, L − before − after).

    **Formula.** y[c, t] = x[c, t + before], 0 ≤ t < L − before − after.

    **Shapes.** input (C, L) → output (C, L − before − after), which must stay ≥ 1. No parameters.

    **FLOPs** 0 (a view).

    **Equivalents.** PyTorch `x[:, :, before:L − after]`; Keras `layers.Cropping1D((before, after))` on the
    channels-last (L, C) tensor (Keras crops the steps axis).
    """

    spatial_axes = ("L",)
    sign = -1
    example = "- {type: cropping1d, cropping: [1, 2]}"
    example_inputs = [(3, 8)]

    cropping: Edges1d = Field(default=1, validate_default=True, description="Elements removed: an int (both ends) or [before, after].")


@register("cropping2d", family="reshaping")
class Cropping2D(_Edges):
    """Crops rows and columns from the borders of a channels-first image.

    **Formula.** y[c, i, j] = x[c, i + top, j + left] over the H − top − bottom by W − left − right interior.

    **Shapes.** input (C, H, W) → output (C, H − top − bottom, W − left − right), each ≥ 1. No parameters.

    **FLOPs** 0 (a view).

    **Equivalents.** PyTorch `x[:, :, top:H − bottom, left:W − right]`; Keras
    `layers.Cropping2D(((top, bottom), (left, right)), data_format="channels_first")`.
    """

    spatial_axes = ("H", "W")
    sign = -1
    example = "- {type: cropping2d, cropping: [[1, 0], [1, 2]]}"
    example_inputs = [(3, 6, 6)]

    cropping: Edges2d = Field(default=0, validate_default=True, description="Elements removed: an int (every side), [h, w] "
                              "(symmetric per axis) or [[top, bottom], [left, right]].")


def _interpolation_2d(v: Any) -> Any:
    """Keras' UpSampling2D names PyTorch has no equivalent for get a message saying what to use instead."""
    if isinstance(v, str) and v.lower() in ("lanczos3", "lanczos5"):
        raise ValueError(f"interpolation '{v}' is not offered: PyTorch has no Lanczos resampling (Keras' torch "
                         "backend refuses it too); use 'bicubic', 'bilinear' or 'nearest'")
    if isinstance(v, str) and v.lower() == "area":
        raise ValueError("interpolation 'area' upsampling by an integer factor equals 'nearest' (each output pixel "
                         "lies inside one input pixel): use 'nearest'")
    return v.lower() if isinstance(v, str) else v


Interpolation2d = Annotated[Literal["nearest", "bilinear", "bicubic"], BeforeValidator(_interpolation_2d)]


class _UpSampling(LayerSpec):
    """upsampling1d / upsampling2d: subclasses declare `size` and `interpolation`."""

    spatial_axes: ClassVar[tuple[str, ...]] = ()

    def _size(self) -> tuple[int, ...]:
        return (self.size,) * len(self.spatial_axes) if isinstance(self.size, int) else tuple(self.size)

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (s,) = in_shapes
        _check_rank(self, s, self.spatial_axes)
        return (s[0], *(n * f for n, f in zip(s[1:], self._size())))

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        from torch import nn

        size = self._size()
        if self.interpolation == "nearest":
            return nn.Upsample(scale_factor=size, mode="nearest")
        return nn.Upsample(scale_factor=size, mode=self.interpolation, align_corners=False)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        # a weighted sum of the n neighbours each output reads (n products, n − 1 sums; nearest: a copy):
        # linear 2 → 3, bilinear 4 → 7, bicubic 16 → 31
        return numel(out_shape) * {"nearest": 0, "linear": 3, "bilinear": 7, "bicubic": 31}[self.interpolation]


@register("upsampling1d", family="reshaping")
class UpSampling1D(_UpSampling):
    """Upsamples a channels-first sequence by an integer factor: (C, L) → (C, L·size).

    **Formula.** nearest: y[c, t] = x[c, ⌊t / size⌋] (each step repeated `size` times); linear:
    y[c, t] = (1 − λ)·x[c, i] + λ·x[c, i + 1] at the source position p = (t + ½)/size − ½ clamped to
    [0, L − 1], i = ⌊p⌋, λ = p − i (half-pixel centres, align_corners=False).

    **Shapes.** input (C, L) → output (C, L·size). No parameters.

    **FLOPs** (per sample): 0 for nearest (a copy); 3 per output element for linear (2 products, 1 sum).

    **Equivalents.** PyTorch `nn.Upsample(scale_factor=size, mode="nearest" | "linear")`; Keras
    `layers.UpSampling1D(size)` (nearest only) on the channels-last (L, C) tensor (Keras repeats the steps).
    """

    spatial_axes = ("L",)
    example = "- {type: upsampling1d, size: 2}"
    example_inputs = [(3, 5)]

    size: int = Field(default=2, ge=1, description="Upsampling factor.")
    interpolation: Literal["nearest", "linear"] = Field(default="nearest", description="'nearest' (repeat each step) "
                                                        "or 'linear' (half-pixel centres).")


@register("upsampling2d", family="reshaping")
class UpSampling2D(_UpSampling):
    """Upsamples a channels-first image by integer factors: (C, H, W) → (C, H·s_h, W·s_w).

    **Formula.** nearest: y[c, i, j] = x[c, ⌊i / s_h⌋, ⌊j / s_w⌋]; bilinear: the linear rule of
    upsampling1d along each axis in turn (half-pixel centres, clamped at the borders, align_corners=False);
    bicubic: along each axis y[t] = Σ_{m=−1..2} w(p − i − m)·x[clamp(i + m, 0, L − 1)] with p = (t + ½)/s − ½,
    i = ⌊p⌋ and Keys' cubic kernel w with a = −0.75 (PyTorch's; borders clamped).

    **Shapes.** input (C, H, W) → output (C, H·s_h, W·s_w). No parameters.

    **FLOPs** (per sample): 0 for nearest (a copy); per output element 7 for bilinear (4 products, 3 sums)
    and 31 for bicubic (16 products, 15 sums).

    **Equivalents.** PyTorch `nn.Upsample(scale_factor=(s_h, s_w), mode="nearest" | "bilinear" | "bicubic")`;
    Keras `layers.UpSampling2D(size, data_format="channels_first", interpolation=...)` on its torch backend
    (the same torch call). Keras on TensorFlow/JAX resizes bicubic with Keys' a = −0.5, so values differ
    there; Keras' lanczos3/lanczos5 are refused (PyTorch has no Lanczos resampling; Keras' torch backend
    refuses them too), and `area` upsampling by an integer factor equals nearest.
    """

    spatial_axes = ("H", "W")
    example = "- {type: upsampling2d, size: 2, interpolation: bilinear}"
    example_inputs = [(3, 4, 5)]

    size: Pair = Field(default=(2, 2), description="Upsampling factors: an int or [s_h, s_w].")
    interpolation: Interpolation2d = Field(default="nearest", description="'nearest' (repeat pixels), 'bilinear' or "
                                           "'bicubic' (half-pixel centres).")
