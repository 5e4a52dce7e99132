"""Regularisation noise: dropout (elements or whole channels) and additive Gaussian noise, active in
training only and the identity at evaluation."""
from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, NonNegativeFloat, field_validator

from ..errors import ShapeError
from .common import fmt_shape
from .registry import LayerSpec, Shape, register

if TYPE_CHECKING:
    from torch import nn


@register("dropout", family="regularization")
class Dropout(LayerSpec):
    """Dropout: in training zero each element with probability `rate` and rescale the survivors.

    **Formula.** `rate` is the probability of DROPPING an element; p_keep = 1 − rate is the probability of
    keeping it (the keep-probability p of Srivastava et al. 2014). In training
    y = m ⊙ x / p_keep with m ~ Bernoulli(p_keep) drawn independently per element, so E[y] = x
    ("inverted" dropout: the rescaling happens in training, not at test time). In evaluation y = x.

    **Shapes.** any shape → the same shape. No parameters.

    **FLOPs** 0: at inference dropout is the identity (training's mask-and-scale is not counted).

    **Equivalents.** PyTorch `nn.Dropout(p=rate)` (p is the DROP probability there too); Keras
    `layers.Dropout(rate)`; TensorFlow 1's `tf.nn.dropout(x, keep_prob=1 − rate)`.
    """

    example = "- {type: dropout, rate: 0.2}"
    example_inputs = [(32,)]
    masking = "keep"  # elementwise: a padding mask passes through

    rate: float = Field(default=0.5, description="Probability of dropping (zeroing) an element in training, in [0, 1).")

    @field_validator("rate")
    @classmethod
    def _rate_in_range(cls, v: float) -> float:
        return _check_rate(v)

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        return tuple(in_shapes[0])

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        from torch import nn

        return nn.Dropout(p=self.rate)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return 0


def _check_rate(v: float) -> float:
    if not 0.0 <= v < 1.0:
        raise ValueError(f"rate is the probability of dropping and must be in [0, 1), got {v}")
    return v


@cache
def _spatial_dropout_class() -> type:
    import torch
    from torch import nn

    class SpatialDropout(nn.Module):
        """Drops whole channels: one Bernoulli draw per (sample, channel), shared by every position."""

        def __init__(self, rate: float, channel_axis: int) -> None:
            super().__init__()
            self.rate, self.channel_axis = rate, channel_axis  # channel_axis counts the batch axis

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, …)
            if not self.training or self.rate == 0.0:
                return x
            mask_shape = [1] * x.dim()
            mask_shape[0], mask_shape[self.channel_axis] = x.shape[0], x.shape[self.channel_axis]
            keep = torch.empty(mask_shape, dtype=x.dtype, device=x.device).bernoulli_(1.0 - self.rate)
            return x * keep / (1.0 - self.rate)

        def extra_repr(self) -> str:
            return f"rate={self.rate}, channel_axis={self.channel_axis}"

    return SpatialDropout


class _SpatialDropout(LayerSpec):
    """spatial_dropout1d / 2d: subclasses give the rank; fields rate and data_format."""

    masking = "keep"  # per step and per element: a padding mask passes through

    rank: ClassVar[int] = 2

    rate: float = Field(default=0.5, description="Probability of dropping (zeroing) a whole channel in training, in [0, 1).")
    data_format: Literal["channels_first", "channels_last"] = Field(
        default="channels_first", description="Where the channels are: 'channels_first' (layerforge's (C, …), as conv "
        "layers give) or 'channels_last' (Keras' default: (L, C) / (H, W, C), e.g. a (T, F) sequence's features).")

    @field_validator("rate")
    @classmethod
    def _rate_in_range(cls, v: float) -> float:
        return _check_rate(v)

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (s,) = in_shapes
        if len(s) != self.rank:
            raise ShapeError(f"{self.type} needs a rank-{self.rank} input (channels and {self.rank - 1} spatial "
                             f"axis{'es' if self.rank > 2 else ''}), got {fmt_shape(s)}",
                             hint="use dropout for element-wise dropout of any shape")
        return tuple(s)

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        return _spatial_dropout_class()(self.rate, 1 if self.data_format == "channels_first" else self.rank)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return 0


@register("spatial_dropout1d", family="regularization")
class SpatialDropout1D(_SpatialDropout):
    """Channel dropout for sequences: in training zero whole channels (every step of a channel at once).

    **Formula.** In training y[c, t] = m_c · x[c, t] / (1 − rate) with one m_c ~ Bernoulli(1 − rate) per
    sample and channel, shared by all steps (neighbouring steps are correlated, so element dropout would
    barely regularise). In evaluation y = x.

    **Shapes.** (C, L) (`channels_first`) or (L, C) (`channels_last`) → the same shape. No parameters.

    **FLOPs** 0: the identity at inference.

    **Equivalents.** PyTorch `nn.Dropout1d(rate)` (channels first); Keras `layers.SpatialDropout1D(rate)`
    (its input is (steps, channels): `data_format: channels_last` here).
    """

    rank = 2
    example = "- {type: spatial_dropout1d, rate: 0.2}"
    example_inputs = [(8, 10)]


@register("spatial_dropout2d", family="regularization")
class SpatialDropout2D(_SpatialDropout):
    """Channel dropout for images: in training zero whole feature maps.

    **Formula.** In training y[c, i, j] = m_c · x[c, i, j] / (1 − rate) with one m_c ~ Bernoulli(1 − rate)
    per sample and channel, shared by every pixel (Tompson et al. 2015). In evaluation y = x.

    **Shapes.** (C, H, W) (`channels_first`) or (H, W, C) (`channels_last`) → the same shape. No parameters.

    **FLOPs** 0: the identity at inference.

    **Equivalents.** PyTorch `nn.Dropout2d(rate)` (channels first); Keras `layers.SpatialDropout2D(rate,
    data_format)`.
    """

    rank = 3
    example = "- {type: spatial_dropout2d, rate: 0.3}"
    example_inputs = [(6, 5, 5)]


@cache
def _gaussian_noise_class() -> type:
    import torch
    from torch import nn

    class GaussianNoise(nn.Module):
        def __init__(self, stddev: float) -> None:
            super().__init__()
            self.stddev = stddev

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not self.training or self.stddev == 0.0:
                return x
            return x + torch.randn_like(x) * self.stddev

        def extra_repr(self) -> str:
            return f"stddev={self.stddev}"

    return GaussianNoise


@register("gaussian_noise", family="regularization")
class GaussianNoise(LayerSpec):
    """Additive Gaussian noise in training (a regulariser, e.g. on inputs); the identity at evaluation.

    **Formula.** In training y = x + ε, ε ~ N(0, stddev²) drawn independently per element; in evaluation
    y = x.

    **Shapes.** any shape → the same shape. No parameters.

    **FLOPs** 0: the identity at inference (training's draw and add are not counted).

    **Equivalents.** PyTorch `x + stddev * torch.randn_like(x)` in training; Keras `layers.GaussianNoise(stddev)`.
    """

    masking = "keep"  # per step and per element: a padding mask passes through

    example = "- {type: gaussian_noise, stddev: 0.1}"
    example_inputs = [(4, 8)]

    stddev: NonNegativeFloat = Field(description="Standard deviation of the noise added in training.")

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        return tuple(in_shapes[0])

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        return _gaussian_noise_class()(self.stddev)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return 0
