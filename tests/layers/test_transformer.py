"""transformer_block: equal to torch's nn.TransformerEncoderLayer with the same weights (pre- and post-norm,
gelu and relu, dense and sparse attention, with and without a key padding mask), a padded batch equal to each
sequence alone, parameters and FLOPs by hand, nested attention errors located."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import layerforge as lf
import layerforge.layers.attention as attention_module
from layerforge.errors import SpecError
from layerforge.layers import get_layer_type
from layerforge.layers.sparse_kernels import pattern_mask
from layerforge.build import build as build_model
from tests.layers.test_masking import T, V, padded_ids


def make(**kw):
    return get_layer_type("transformer_block").model_validate({"type": "transformer_block", **kw})


def torch_layer_with_the_same_weights(block, d, heads, ffn, activation, norm_first):
    ref = nn.TransformerEncoderLayer(d, heads, dim_feedforward=ffn, dropout=0.0, activation=activation,
                                     batch_first=True, norm_first=norm_first).eval()
    a = block.attention
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(torch.cat([a.query.weight, a.key.weight, a.value.weight]))
        ref.self_attn.in_proj_bias.copy_(torch.cat([a.query.bias, a.key.bias, a.value.bias]))
        ref.self_attn.out_proj.weight.copy_(a.output.weight)
        ref.self_attn.out_proj.bias.copy_(a.output.bias)
        for mine, theirs in ((block.ffn_in, ref.linear1), (block.ffn_out, ref.linear2),
                             (block.norm1, ref.norm1), (block.norm2, ref.norm2)):
            theirs.load_state_dict(mine.state_dict())
    return ref


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize("activation", ["gelu", "relu"])
@pytest.mark.parametrize("attention", [
    {"type": "multi_head_attention", "num_heads": 2, "causal": True},
    {"type": "multi_head_attention", "num_heads": 4},
    {"type": "sparse_attention", "num_heads": 2, "pattern": "sliding", "window": 3, "block_size": 4},
    {"type": "sparse_attention", "num_heads": 2, "pattern": "block_local", "window": 4, "global_tokens": 1,
     "causal": False},
])
@pytest.mark.parametrize("lengths", [None, [10, 4, 1]], ids=["full", "padded"])
def test_transformer_block_equals_torch_transformer_encoder_layer(norm, activation, attention, lengths):
    torch.manual_seed(0)
    layer = make(attention=attention, ffn_dim=24, activation=activation, norm=norm)
    block = layer.build([(10, 8)]).eval()
    ref = torch_layer_with_the_same_weights(block, 8, attention["num_heads"], 24, activation, norm == "pre")
    assert sum(p.numel() for p in block.parameters()) == sum(p.numel() for p in ref.parameters())
    if attention["type"] == "sparse_attention":
        mask = ~pattern_mask(layer.attention.sparse_pattern(), 10, 10)  # torch: True = blocked
    else:
        mask = nn.Transformer.generate_square_subsequent_mask(10).bool() if attention.get("causal") else None
    x = torch.randn(3, 10, 8, requires_grad=True)  # requires_grad: torch's inference fast path stays off
    if lengths is None:
        y, expected = block(x), ref(x, src_mask=mask)
    else:  # a key padding mask; the valid steps compare (a padded query may have no valid key left, where
        # torch and layerforge choose different padding values)
        valid = torch.arange(10) < torch.tensor(lengths)[:, None]  # (B, T), True = a real step
        y = block(x, masks=[valid])[valid]  # (valid steps, D)
        expected = ref(x, src_mask=mask, src_key_padding_mask=~valid)[valid]
    assert torch.allclose(y, expected, atol=1e-5)
    gy, = torch.autograd.grad(y.sum(), x)
    ge, = torch.autograd.grad(expected.sum(), x)
    assert torch.allclose(gy, ge, atol=1e-5)


def masked_model(layers: list[dict], blocks: dict | None = None):
    """embedding(mask_zero) → layers, over ids of up to T steps (0 = padding); the graph and the eval module."""
    embed = {"type": "embedding", "input_dim": V, "output_dim": 6, "mask_zero": True}
    _, graph, module = build_model({"model": {"input_shape": [T], "blocks": blocks or {}, "layers": [embed, *layers]}},
                                   seed=0)
    return graph, module.eval()


MASKED_BLOCKS = {
    "pre": {"attention": {"type": "multi_head_attention", "num_heads": 2}},
    "post_causal": {"attention": {"type": "multi_head_attention", "num_heads": 2, "causal": True}, "norm": "post"},
    "sparse_sliding": {"attention": {"type": "sparse_attention", "num_heads": 2, "window": 2, "backend": "blocked"}},
    "sparse_block_local_post": {"attention": {"type": "sparse_attention", "num_heads": 3, "pattern": "block_local",
                                              "window": 3, "causal": False}, "norm": "post", "activation": "relu"},
}


@pytest.mark.parametrize("case", sorted(MASKED_BLOCKS))
def test_padded_batch_through_a_transformer_block_equals_each_sequence_alone(case):
    """embedding(mask_zero) → transformer_block: the valid steps of a padded batch (lengths 7, 3, 1, 5) equal
    each sequence run alone at its true length, within 1e-6 (float32: batched and single matrix products
    round differently, so not bitwise); the output keeps the mask."""
    graph, net = masked_model([{"type": "transformer_block", "ffn_dim": 12, **MASKED_BLOCKS[case]}])
    assert graph.nodes[-1].mask_mode == "use" and graph.nodes[-1].out_masked
    batch, seqs = padded_ids()
    with torch.no_grad():
        out = net(batch)
        for b, s in enumerate(seqs):
            torch.testing.assert_close(out[b, : len(s)], net(s.unsqueeze(0))[0], rtol=0, atol=1e-6)


def test_a_stack_of_masked_transformer_blocks_pooled_over_valid_steps_equals_each_sequence_alone():
    blocks = {"enc": {"repeat": 2, "layers": [{"type": "transformer_block", "ffn_dim": 12,
                                               "attention": {"type": "multi_head_attention", "num_heads": 2}}]}}
    graph, net = masked_model([{"block": "enc"}, {"type": "sequence_pool", "mode": "avg"}, {"type": "dense", "units": 2}],
                              blocks=blocks)
    assert [n.out_masked for n in graph.nodes] == [True, True, True, False, False]
    batch, seqs = padded_ids()
    with torch.no_grad():
        out = net(batch)
        for b, s in enumerate(seqs):
            torch.testing.assert_close(out[b], net(s.unsqueeze(0))[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("layout", ["right_padded", "gap"])
def test_causal_block_with_right_padding_needs_no_pair_mask_and_equals_the_masked_reference(layout, monkeypatch):
    """Causal self-attention over right-padded steps: a valid query's keys j ≤ i are all valid, so no (B, T, T)
    mask is built (SDPA's causal kernel runs) and the valid steps equal the explicitly masked result; a valid
    step after a padded one (a `masking` layer can make that) goes through the pair mask."""
    torch.manual_seed(0)
    block = make(attention={"type": "multi_head_attention", "num_heads": 2, "causal": True}, ffn_dim=12).build(
        [(9, 8)]).eval()
    x = torch.randn(3, 9, 8)
    valid = torch.arange(9) < torch.tensor([9, 5, 2])[:, None]
    if layout == "gap":
        valid[0, 3] = False
    calls = []
    real = attention_module.allowed_pairs
    monkeypatch.setattr(attention_module, "allowed_pairs", lambda *a, **k: calls.append(1) or real(*a, **k))
    with torch.no_grad():
        y = block(x, masks=[valid])
        assert len(calls) == (0 if layout == "right_padded" else 1)
        monkeypatch.setattr(attention_module, "right_padded", lambda _: False)
        reference = block(x, masks=[valid])  # padded keys removed by the (B, T, T) mask
    torch.testing.assert_close(y[valid], reference[valid], rtol=0, atol=1e-6)


def test_masked_model_flops_are_those_of_the_unmasked_model():
    layers = [{"type": "transformer_block", "ffn_dim": 12, "attention": {"type": "multi_head_attention", "num_heads": 2}},
              {"type": "sequence_pool", "mode": "avg"}]
    masked, _ = masked_model(layers)
    _, plain, _ = build_model({"model": {"input_shape": [T], "layers": [
        {"type": "embedding", "input_dim": V, "output_dim": 6}, *layers]}}, seed=0)
    assert masked.masked and not plain.masked
    assert [n.flops() for n in masked.nodes] == [n.flops() for n in plain.nodes]


def test_transformer_block_parameters_and_flops_by_hand():
    # T=10, D=8, F=16, multi-head h=2 (non-causal): attention 1,... taken from the attention layer itself
    layer = make(attention={"type": "multi_head_attention", "num_heads": 2}, ffn_dim=16)
    block = layer.build([(10, 8)])
    assert sum(p.numel() for p in block.parameters()) == (4 * (8 * 8 + 8)) + 2 * 16 + (8 * 16 + 16) + (16 * 8 + 8)
    attention = layer.attention.flops([(10, 8)], (10, 8))
    # norms 2·(7·80 + 10) = 1140; ffn 10·(2·8·16 + 16) + 10·(2·16·8 + 8) + 10·16 = 2720 + 2640 + 160; adds 160
    assert layer.flops([(10, 8)], (10, 8)) == attention + 1140 + 2720 + 2640 + 160 + 160
    assert layer.output_shape([(10, 8)]) == (10, 8)


def test_transformer_block_shows_its_sparse_attention_pairs():
    layer = make(attention={"type": "sparse_attention", "window": 3, "block_size": 4, "num_heads": 1,
                            "backend": "blocked"})
    assert layer.extra_info([(10, 4)], (10, 4)) == {"backend": "blocked", "attended_pairs": 27, "computed_pairs": 72}


def test_errors_inside_the_nested_attention_are_located(tmp_path):
    from tests.helpers import write_spec

    path = write_spec(tmp_path, """
        model:
          input_shape: [12, 8]
          layers:
            - {type: transformer_block, attention: {type: sparse_attention, num_heads: 2, windw: 4}}
    """)
    with pytest.raises(SpecError) as e:
        lf.load_spec(path)
    found = {(i.message, i.line, i.column, i.layer) for i in e.value.issues}
    assert found == {("missing required key 'window'", 4, 33, "transformer_block"),
                     ("unknown key 'windw'", 4, 83, "transformer_block")}


@pytest.mark.parametrize("attention, message", [
    ({"type": "dense", "units": 3}, "attention.type must be multi_head_attention or sparse_attention"),
    ({"type": "multi_head_attention", "num_heads": 2, "name": "a"}, "no name or inputs"),
    ({"type": "multi_head_attention", "num_heads": 2, "output_dim": 4}, "output_dim must be left out"),
])
def test_attention_must_be_a_self_attention_spec(attention, message):
    with pytest.raises(ValueError, match=message):
        make(attention=attention)
