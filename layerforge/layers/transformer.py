"""The Transformer encoder block as one layer type: attention (dense or sparse) and a feed-forward network,
each with a residual connection and layer normalisation, pre-norm or post-norm."""
from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, PositiveFloat, PositiveInt, Tag, model_validator

from .attention import MultiHeadAttention, sequence
from .common import numel
from .registry import Shape, register
from .sparse_attention import SparseAttention
from .weights import KernelOptions


def _attention_type(v: Any) -> str:
    return v.get("type") if isinstance(v, dict) else getattr(v, "type", None)


AttentionSpec = Annotated[
    Union[Annotated[MultiHeadAttention, Tag("multi_head_attention")], Annotated[SparseAttention, Tag("sparse_attention")]],
    Discriminator(_attention_type, custom_error_type="attention_type",
                  custom_error_message="attention.type must be multi_head_attention or sparse_attention"),
]


@cache
def _module_class() -> type:
    import torch.nn.functional as F
    from torch import nn

    class TransformerBlock(nn.Module):
        """x + attn(norm1(x)), then + ffn(norm2(·)) (pre-norm); or norm1(x + attn(x)), norm2(· + ffn(·))."""

        def __init__(self, attention: nn.Module, d: int, ffn: int, activation: str, dropout: float, pre_norm: bool,
                     eps: float) -> None:
            super().__init__()
            self.attention = attention
            self.norm1, self.norm2 = nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps)
            self.ffn_in, self.ffn_out = nn.Linear(d, ffn), nn.Linear(ffn, d)
            self.activation = nn.GELU() if activation == "gelu" else nn.ReLU()
            self.dropout, self.pre_norm = dropout, pre_norm

        def _drop(self, x):
            return F.dropout(x, self.dropout, self.training)

        def _ffn(self, x):  # (B, T, D) → (B, T, D)
            return self.ffn_out(self._drop(self.activation(self.ffn_in(x))))

        def forward(self, x, masks=None):  # x: (B, T, D); masks: [padding mask (B, T)] or None
            # only the attention mixes steps: it gets the key padding mask; norms, FFN and dropout are per step
            if self.pre_norm:
                x = x + self._drop(self.attention(self.norm1(x), masks=masks))
                return x + self._drop(self._ffn(self.norm2(x)))
            x = self.norm1(x + self._drop(self.attention(x, masks=masks)))
            return self.norm2(x + self._drop(self._ffn(x)))

    return TransformerBlock


@register("transformer_block", family="attention")
class TransformerBlock(KernelOptions):
    """A Transformer encoder block: self-attention and a feed-forward network, each with a residual and a norm.

    **Formula.** With A the `attention` layer (a `multi_head_attention` or `sparse_attention` spec, self-attention
    with output width D), FFN(x) = W₂·drop(f(W₁·x + b₁)) + b₂ (f = gelu or relu, width `ffn_dim`), LN layer
    normalisation and drop dropout with rate `dropout` (training only):
    pre-norm (`norm: pre`, GPT-2 / ViT): x ← x + drop(A(LN₁(x))), y = x + drop(FFN(LN₂(x)));
    post-norm (`norm: post`, the original Transformer and BERT): x ← LN₁(x + drop(A(x))),
    y = LN₂(x + drop(FFN(x))). The attention's own `dropout` (on its weights) and `causal` are set inside
    `attention`. A padding mask on the input (variable-length sequences: `embedding` with `mask_zero`,
    `masking`) goes to A as the key padding mask: padded keys get no weight, with `causal` and the sparse
    pattern as well (see `sparse_attention` for its backend then). Padded steps still get outputs, which are
    padding: the mask passes on unchanged and later mask-aware layers ignore them. Everything but A works
    step by step.

    **Shapes.** input (T, D) → output (T, D). Parameters: the attention's + 2·2·D (two norms) + D·F + F +
    F·D + D (the feed-forward network, F = ffn_dim).

    **FLOPs** (per sample, N = T·D): the attention's count, two layernorms 2·(7·N + T), the feed-forward
    network T·(2·D·F + F) + T·(2·F·D + D) + T·F (the activation), and the two residual additions 2·N.

    **Equivalents.** PyTorch `nn.TransformerEncoderLayer(D, h, dim_feedforward=F, dropout=p, activation="gelu",
    batch_first=True, norm_first=(norm == "pre"))` with `attention: {type: multi_head_attention, num_heads: h,
    dropout: p}` (a sparse attention: its `src_mask` = the pattern's mask; a padding mask:
    `src_key_padding_mask` = ~mask); Keras-hub `TransformerEncoder(F, h, dropout, activation, normalize_first,
    kernel_initializer, bias_initializer)` called with `padding_mask`. The kernel/bias options apply to the
    attention's four projections and both feed-forward layers (not to the layer norms' γ, β).
    """

    example = ("- {type: transformer_block, ffn_dim: 64, "
               "attention: {type: sparse_attention, pattern: sliding, window: 4, num_heads: 2}}")
    example_inputs = [(12, 16)]
    masking = "use"  # the attention's padded keys get no weight; the output keeps the input's mask

    attention: AttentionSpec = Field(
        description="The attention layer: {type: multi_head_attention, num_heads: h, causal: ...} or "
                    "{type: sparse_attention, window: w, pattern: ...} (without name or inputs)."
    )
    ffn_dim: PositiveInt | None = Field(default=None, description="Width F of the feed-forward network (default 4·D).")
    activation: Literal["gelu", "relu"] = Field(default="gelu", description="The feed-forward network's activation.")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0,
                           description="Dropout on both residual branches and after the activation (training only).")
    norm: Literal["pre", "post"] = Field(default="pre", description="pre: x + f(LN(x)) (GPT-2); post: LN(x + f(x)) (BERT).")
    epsilon: PositiveFloat = Field(default=1e-5, description="Added to the variance in both layer norms.")

    @model_validator(mode="after")
    def _self_attention_only(self) -> "TransformerBlock":
        a = self.attention
        if a.name is not None or a.inputs is not None:
            raise ValueError("attention takes no name or inputs: the block feeds it its own input")
        if isinstance(a, MultiHeadAttention) and a.output_dim is not None:
            raise ValueError("attention.output_dim must be left out: the block's attention keeps the width D")
        nested = [f"attention.{r}_{k}" for r in a.roles for k in ("initializer", "regularizer") if getattr(a, f"{r}_{k}")]
        if nested:
            raise ValueError(f"{', '.join(nested)}: set these on the block ({nested[0].partition('.')[2]}), where "
                             "they apply to the attention's projections and the feed-forward network's kernels")
        return self

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        t, d = sequence(self, in_shapes[0])
        self.attention.output_shape([(t, d)])
        return (t, d)

    def build(self, in_shapes: list[Shape]):
        d = in_shapes[0][-1]
        return _module_class()(self.attention.build(in_shapes), d, self.ffn_dim or 4 * d, self.activation, self.dropout,
                               self.norm == "pre", self.epsilon)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        t, d = in_shapes[0]
        f, n = self.ffn_dim or 4 * d, numel(in_shapes[0])
        attention = self.attention.flops(in_shapes, out_shape)
        norms = 2 * (7 * n + t)
        ffn = t * (2 * d * f + f) + t * (2 * f * d + d) + t * f
        return attention + norms + ffn + 2 * n

    def extra_info(self, in_shapes: list[Shape], out_shape: Shape) -> dict[str, Any]:
        return self.attention.extra_info(in_shapes, out_shape)
