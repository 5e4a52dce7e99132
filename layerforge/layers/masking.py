"""Padding masks for variable-length sequences: the ``masking`` layer and pooling over valid steps.

A mask is a bool (B, T) tensor, True at a valid step, made by ``embedding`` (``mask_zero``) or ``masking``
and carried beside the values through the graph (``graph.plan`` decides, per layer, whether it is kept,
used, consumed or refused: ``LayerSpec.mask_mode``). Padding is at the end of each sequence (right
padding), as the data section produces it. See docs/sequences.md.
"""
from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from ..errors import ShapeError
from .common import numel, sequence_hint
from .registry import LayerSpec, Shape, register

if TYPE_CHECKING:
    import torch

_FAMILY = "sequence"


@cache
def _modules() -> dict[str, type]:
    import torch
    from torch import nn

    class Masking(nn.Module):
        """Marks steps whose features all equal ``mask_value`` as padding, and zeroes them (as Keras)."""

        def __init__(self, mask_value: float) -> None:
            super().__init__()
            self.mask_value = mask_value

        def compute_mask(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, F) → (B, T) bool
            return (x != self.mask_value).any(dim=-1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, F)
            return x * self.compute_mask(x).unsqueeze(-1).to(x.dtype)

        def extra_repr(self) -> str:
            return f"mask_value={self.mask_value}"

    class SequencePool(nn.Module):
        """Mean or max over the time axis of (B, T, F), over the valid steps only when a mask comes."""

        def __init__(self, mode: str) -> None:
            super().__init__()
            self.mode = mode

        def forward(self, x: torch.Tensor, masks: list[torch.Tensor | None] | None = None) -> torch.Tensor:
            mask = masks[0] if masks else None
            return masked_pool(x, mask, self.mode)

        def extra_repr(self) -> str:
            return f"mode={self.mode}"

    return {"Masking": Masking, "SequencePool": SequencePool}


def masked_pool(x: "torch.Tensor", mask: "torch.Tensor | None", mode: str) -> "torch.Tensor":
    """Mean or max of x (B, T, F) over time, counting only the steps where mask (B, T) is True; a
    sequence with no valid step gives zeros (as Keras)."""
    import torch

    if mask is None:
        return x.mean(dim=1) if mode == "avg" else x.amax(dim=1)  # (B, F)
    m = mask.unsqueeze(-1)  # (B, T, 1)
    if mode == "avg":
        count = m.sum(dim=1).clamp(min=1).to(x.dtype)  # (B, 1)
        return (x * m.to(x.dtype)).sum(dim=1) / count  # (B, F)
    y = x.masked_fill(~m, float("-inf")).amax(dim=1)  # (B, F)
    return torch.where(m.any(dim=1), y, torch.zeros_like(y))


@register("masking", family=_FAMILY)
class Masking(LayerSpec):
    """Marks padded steps of a real-valued sequence: a step whose features all equal `mask_value` is padding.

    **Formula.** mask[t] = any_f (x[t, f] ≠ mask_value); y[t] = x[t] · mask[t] (padded steps become 0,
    as Keras). The mask travels with y through the graph: recurrent layers stop at each sequence's last
    valid step, attention ignores padded keys, `sequence_pool` averages valid steps only, per-step losses
    skip padded steps (docs/sequences.md). Pad at the end of each sequence (the data section does).

    **Shapes.** input (T, F) → output (T, F), carrying a (T,) mask per sample. No parameters.

    **FLOPs** (per sample): 2·T·F (one comparison and one multiply per element).

    **Equivalents.** Keras `layers.Masking(mask_value)`; PyTorch has no layer: `lengths` and
    `nn.utils.rnn.pack_padded_sequence` for recurrent layers, `key_padding_mask` for attention.
    """

    example = "- {type: masking, mask_value: 0.0}"
    example_inputs = [(12, 4)]
    masking = "make"

    mask_value: float = Field(default=0.0, description="The padding value: a step whose features all equal it is masked.")

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (s,) = in_shapes
        if len(s) != 2:
            raise ShapeError(f"masking needs a sequence (T, F), got {tuple(s)}", hint=sequence_hint(s))
        return tuple(s)

    def build(self, in_shapes: list[Shape]):
        return _modules()["Masking"](self.mask_value)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return 2 * numel(in_shapes[0])


@register("sequence_pool", family=_FAMILY)
class SequencePool(LayerSpec):
    """Mean or max over the time axis of a sequence, over the valid steps only when it carries a mask.

    **Formula.** For x ∈ ℝ^{T×F} with valid steps V (all T without a mask): `avg`: y[f] = (1/|V|) Σ_{t∈V} x[t, f];
    `max`: y[f] = max_{t∈V} x[t, f]. A sequence with no valid step gives 0.

    **Shapes.** input (T, F) → output (F,). No parameters. Time-first, unlike `global_avg_pool`
    (channels first: it would average a (T, F) sequence over F, and refuses a masked input).

    **FLOPs** (per sample): T·F (every element once: T − 1 adds and a divide, or T − 1 comparisons, per
    feature; counted at the padded length T).

    **Equivalents.** Keras `layers.GlobalAveragePooling1D()` / `layers.GlobalMaxPooling1D()` (channels_last,
    mask-aware the same way); PyTorch `x.mean(dim=1)` / `x.amax(dim=1)`, or `(x·m).sum(1) / m.sum(1)` with a
    mask m.
    """

    example = "- {type: sequence_pool, mode: avg}"
    example_inputs = [(12, 8)]
    masking = "consume"

    mode: Literal["avg", "max"] = Field(default="avg", description="avg: mean over the valid steps; max: their maximum.")

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (s,) = in_shapes
        if len(s) != 2:
            raise ShapeError(f"sequence_pool needs a sequence (T, F), got {tuple(s)}", hint=sequence_hint(s))
        return (s[1],)

    def build(self, in_shapes: list[Shape]):
        return _modules()["SequencePool"](self.mode)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return numel(in_shapes[0])
