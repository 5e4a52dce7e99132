"""Embeddings: integer ids → learned vectors, and positional encodings added to a sequence."""
from __future__ import annotations

import math
from functools import cache
from typing import TYPE_CHECKING, Literal

from pydantic import Field, PositiveInt

from ..errors import ShapeError
from .common import fmt_shape, numel
from .registry import LayerSpec, Shape, register
from .weights import EmbeddingOptions

if TYPE_CHECKING:
    import torch
    from torch import nn


@register("embedding", family="embedding")
class Embedding(EmbeddingOptions):
    """Token embedding: looks up a learned vector for each integer id, (T,) ids → (T, output_dim).

    **Formula.** y[t] = E[x[t]] for a table E ∈ ℝ^{input_dim×output_dim}; the ids x[t] must lie in
    [0, input_dim). Initialised N(0, 1) (PyTorch's default; Keras draws U(−0.05, 0.05)).

    **Shapes.** integer ids (T,) → (T, output_dim); more generally (…) → (…, output_dim). The input must be an
    integer tensor. Parameters: input_dim·output_dim.

    With `mask_zero: true`, id 0 is padding: the output carries a mask (True where x[t] ≠ 0) that
    recurrent, attention and `sequence_pool` layers and per-step losses honour (docs/sequences.md); the
    table keeps its row 0 (as Keras), so real ids should start at 1.

    **FLOPs** 0 (a table lookup).

    **Equivalents.** PyTorch `nn.Embedding(input_dim, output_dim)` (`padding_idx=0` is different: it only
    freezes row 0 at zeros); Keras `layers.Embedding(input_dim, output_dim, mask_zero=…)`.
    """

    example = "- {type: embedding, input_dim: 100, output_dim: 16}"
    example_inputs = [(12,)]

    input_dim: PositiveInt = Field(description="Vocabulary size: ids run from 0 to input_dim - 1.")
    output_dim: PositiveInt = Field(description="Size of each embedding vector.")
    mask_zero: bool = Field(default=False, description="Treat id 0 as padding: the output carries a mask of the "
                            "non-zero steps (variable-length sequences).")

    def id_range(self, input_index: int = 0) -> tuple[int, int]:
        return (0, self.input_dim)

    def mask_mode(self, in_shapes: list[Shape]) -> str:
        return "make" if self.mask_zero else "keep"

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        return (*in_shapes[0], self.output_dim)

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        from torch import nn

        if self.mask_zero:
            return _masked_embedding_class()(self.input_dim, self.output_dim)
        return nn.Embedding(self.input_dim, self.output_dim)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return 0


@cache
def _masked_embedding_class() -> type:
    import torch
    from torch import nn

    class MaskedEmbedding(nn.Embedding):
        """nn.Embedding whose id 0 marks padding (the same weights and state dict)."""

        def compute_mask(self, ids: torch.Tensor) -> torch.Tensor:  # (B, T) → (B, T) bool
            return ids != 0

    return MaskedEmbedding


def sinusoidal_table(max_len: int, dim: int) -> "torch.Tensor":
    """The fixed encoding of Vaswani et al. (2017): PE[p, 2i] = sin(p / 10000^{2i/d}),
    PE[p, 2i+1] = cos(p / 10000^{2i/d}); an odd d keeps the last sine column."""
    import torch

    pos = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)  # (max_len, 1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))  # (ceil(d/2),)
    pe = torch.zeros(max_len, dim)  # (max_len, d)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return pe


@cache
def _positional_class() -> type:
    import torch
    from torch import nn

    class PositionalEncoding(nn.Module):
        """x + PE[:T]; PE is a fixed buffer (sinusoidal) or a trained parameter (learned)."""

        def __init__(self, max_len: int, dim: int, learned: bool) -> None:
            super().__init__()
            if learned:
                self.pe = nn.Parameter(torch.empty(max_len, dim))  # (max_len, D)
                nn.init.normal_(self.pe, std=0.02)
            else:
                self.register_buffer("pe", sinusoidal_table(max_len, dim))  # (max_len, D)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
            return x + self.pe[: x.shape[1]].to(x.dtype)  # (B, T, D)

    return PositionalEncoding


@register("positional_encoding", family="embedding")
class PositionalEncoding(LayerSpec):
    """Adds a position signal to a sequence: (T, D) → (T, D), y = x + PE[:T].

    **Formula.** y[t] = x[t] + PE[t] for t < T. `sinusoidal` (Vaswani et al. 2017, fixed, not trained):
    PE[p, 2i] = sin(p / 10000^{2i/D}), PE[p, 2i+1] = cos(p / 10000^{2i/D}) (for odd D the last column is a
    sine). `learned`: PE ∈ ℝ^{max_len×D} is a trained parameter initialised N(0, 0.02²) (as in GPT-2/BERT).

    **Shapes.** input (T, D) → output (T, D). Parameters: max_len·D for `learned`, none for `sinusoidal`
    (it keeps a max_len·D buffer instead, saved with the weights).

    **FLOPs** (per sample): T·D (the addition; the table is a constant).

    **Equivalents.** PyTorch: the `PositionalEncoding` module of the PyTorch transformer tutorial (without its
    dropout), or `x + nn.Parameter(max_len, D)[:T]`; Keras-Hub `SinePositionEncoding` / `PositionEmbedding`
    (added to x).
    """

    example = "- {type: positional_encoding, kind: sinusoidal, max_len: 64}"
    example_inputs = [(10, 16)]
    masking = "keep"

    kind: Literal["sinusoidal", "learned"] = Field(
        default="sinusoidal", description="'sinusoidal' (fixed sin/cos table) or 'learned' (a trained table)."
    )
    max_len: PositiveInt = Field(default=512, description="Longest sequence length the table covers; a longer input is "
                                 "an error.")

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (s,) = in_shapes
        if len(s) != 2:
            raise ShapeError(f"positional_encoding needs a sequence (T, D), got {fmt_shape(s)}",
                             hint="put it after an embedding or a dense layer that gives (T, D)")
        if s[0] > self.max_len:
            raise ShapeError(f"the sequence has {s[0]} steps but max_len is {self.max_len}",
                             hint=f"set max_len to at least {s[0]}")
        return tuple(s)

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        return _positional_class()(self.max_len, in_shapes[0][-1], self.kind == "learned")

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return numel(out_shape)
