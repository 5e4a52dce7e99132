"""Dropout: random zeroing of activations during training, the identity at evaluation."""
from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, field_validator

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
        if not 0.0 <= v < 1.0:
            raise ValueError(f"rate is the probability of dropping and must be in [0, 1), got {v}")
        return v

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        return tuple(in_shapes[0])

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        from torch import nn

        return nn.Dropout(p=self.rate)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return 0
