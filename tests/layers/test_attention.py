"""self_attention, attention (Keras), multi_head_attention: numerics against explicit softmax(QKᵀ/√d)V and
against independent modules with the same weights, FLOPs by hand (their matmul part also against torch's
FlopCounterMode), shape errors. sparse_attention has its own file (test_sparse_attention.py)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from layerforge.errors import ShapeError
from layerforge.layers import get_layer_type


def make(type_: str, **kw):
    return get_layer_type(type_).model_validate({"type": type_, **kw})


def reference_attention(q, k, v, scale, mask=None):
    """softmax(Q·Kᵀ·scale)·V written out; mask: bool (Tq, Tk), True = attend."""
    scores = q @ k.transpose(-2, -1) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def causal_mask(tq, tk):
    return torch.ones(tq, tk, dtype=torch.bool).tril()


def matmul_flops(fn) -> int:
    """Matmul FLOPs torch counts; SDPA forced to its math path (FlopCounterMode skips the CPU flash kernel)."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


# --- self_attention ----------------------------------------------------------------------------
class GuideSelfAttention(nn.Module):
    """The tutorial module, written independently of layerforge."""

    def __init__(self, d):
        super().__init__()
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, d)

    def forward(self, x):
        q, k, v = self.query(x), self.key(x), self.value(x)
        scores = torch.matmul(q, k.transpose(-2, -1)) / (k.size(-1) ** 0.5)
        return torch.matmul(torch.softmax(scores, dim=-1), v)


def test_self_attention_equals_the_guide_module_with_the_same_weights():
    torch.manual_seed(0)
    module = make("self_attention").build([(7, 16)]).eval()
    guide = GuideSelfAttention(16)
    guide.load_state_dict(module.state_dict())  # same parameter names: query, key, value
    x = torch.randn(3, 7, 16)
    assert torch.allclose(module(x), guide(x), atol=1e-5)


def test_self_attention_with_units_equals_explicit_formula():
    torch.manual_seed(0)
    module = make("self_attention", units=6, use_bias=False).build([(5, 4)]).eval()
    x = torch.randn(2, 5, 4)
    q, k, v = x @ module.query.weight.T, x @ module.key.weight.T, x @ module.value.weight.T
    assert module.query.bias is None
    assert torch.allclose(module(x), reference_attention(q, k, v, 1 / math.sqrt(6)), atol=1e-5)
    assert make("self_attention", units=6).output_shape([(5, 4)]) == (5, 6)


def test_self_attention_causal_ignores_the_future():
    torch.manual_seed(0)
    module = make("self_attention", causal=True).build([(6, 4)]).eval()
    x = torch.randn(2, 6, 4)
    q, k, v = module.query(x), module.key(x), module.value(x)
    assert torch.allclose(module(x), reference_attention(q, k, v, 0.5, causal_mask(6, 6)), atol=1e-5)
    x2 = x.clone()
    x2[:, 4:] = torch.randn(2, 2, 4)  # change the last two steps
    assert torch.allclose(module(x)[:, :4], module(x2)[:, :4], atol=1e-6)


def test_self_attention_dropout_acts_only_in_training():
    torch.manual_seed(0)
    module = make("self_attention", dropout=0.5).build([(6, 4)])
    x = torch.randn(2, 6, 4)
    module.eval()
    assert torch.equal(module(x), module(x))
    module.train()
    assert not torch.allclose(module(x), module.eval()(x))


def test_self_attention_flops_by_hand():
    # T=4, D=3, U=2: projections 3·(2·4·3·2 + 4·2) = 168; QKᵀ 2·4·4·2 = 64; scale 16; softmax 3·16 = 48;
    # A·V 2·4·4·2 = 64 → 360
    layer = make("self_attention", units=2)
    assert layer.flops([(4, 3)], (4, 2)) == 168 + 64 + 16 + 48 + 64 == 360
    module = layer.build([(4, 3)])
    # the matmul part (no bias, scale, softmax): 3·48 + 64 + 64
    assert matmul_flops(lambda: module(torch.randn(1, 4, 3))) == 3 * 48 + 64 + 64


# --- attention (Keras) -------------------------------------------------------------------------
def test_attention_dot_is_unscaled_softmax_of_query_key():
    torch.manual_seed(0)
    module = make("attention").build([(4, 3), (5, 3)])
    q, v = torch.randn(2, 4, 3), torch.randn(2, 5, 3)
    assert len(list(module.parameters())) == 0
    assert torch.allclose(module(q, v), reference_attention(q, v, v, 1.0), atol=1e-5)


def test_attention_with_key_and_learned_scale():
    torch.manual_seed(0)
    layer = make("attention", use_scale=True)
    module = layer.build([(4, 3), (5, 2), (5, 3)])
    assert module.scale.item() == 1.0  # Keras initialises the scale to 1
    with torch.no_grad():
        module.scale.fill_(0.7)
    q, v, k = torch.randn(2, 4, 3), torch.randn(2, 5, 2), torch.randn(2, 5, 3)
    y = module(q, v, k)
    assert layer.output_shape([(4, 3), (5, 2), (5, 3)]) == (4, 2) and y.shape == (2, 4, 2)
    assert torch.allclose(y, reference_attention(q, k, v, 0.7), atol=1e-5)
    y.sum().backward()
    assert module.scale.grad is not None


def test_attention_causal_with_more_keys_than_queries_masks_top_left():
    torch.manual_seed(0)
    module = make("attention", causal=True).build([(3, 4), (5, 4)])
    q, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    assert torch.allclose(module(q, v), reference_attention(q, v, v, 1.0, causal_mask(3, 5)), atol=1e-5)


@pytest.mark.parametrize("use_scale", [False, True])
def test_attention_concat_score_matches_keras_formula(use_scale):
    torch.manual_seed(0)
    module = make("attention", score_mode="concat", use_scale=use_scale, causal=True).build([(4, 3), (4, 3)])
    with torch.no_grad():
        module.concat_score_weight.fill_(1.3)
        if use_scale:
            module.scale.fill_(0.6)
    q, v = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    s = 0.6 if use_scale else 1.0
    scores = torch.zeros(2, 4, 4)
    for i in range(4):
        for j in range(4):
            scores[:, i, j] = 1.3 * torch.tanh(s * (q[:, i] + v[:, j])).sum(-1)
    scores = scores.masked_fill(~causal_mask(4, 4), float("-inf"))
    assert torch.allclose(module(q, v), torch.softmax(scores, -1) @ v, atol=1e-5)


def test_attention_flops_by_hand():
    # Tq=4, Tv=5, D=3, Dv=2, P=20. dot with scale: QKᵀ 2·20·3 = 120, scale 20, softmax 60, A·V 2·20·2 = 80
    shapes = [(4, 3), (5, 2), (5, 3)]
    assert make("attention", use_scale=True).flops(shapes, (4, 2)) == 120 + 20 + 60 + 80 == 280
    assert make("attention").flops(shapes, (4, 2)) == 260
    # concat with scale: add, scale, tanh, sum: 4·P·D = 240, × w 20, softmax 60, A·V 80
    assert make("attention", score_mode="concat", use_scale=True).flops(shapes, (4, 2)) == 240 + 20 + 60 + 80


def test_attention_width_mismatch_is_a_shape_error():
    with pytest.raises(ShapeError, match="query's width 3 must equal the value"):
        make("attention").output_shape([(4, 3), (5, 2)])
    with pytest.raises(ShapeError, match="key's width 2"):
        make("attention").output_shape([(4, 3), (5, 3), (5, 2)])


def test_attention_key_value_length_mismatch_is_a_shape_error():
    with pytest.raises(ShapeError, match="key 6 and value 5"):
        make("attention").output_shape([(4, 3), (5, 3), (6, 3)])


def test_attention_needs_sequences():
    with pytest.raises(ShapeError, match=r"needs its value as a sequence \(T, D\), got \(3, 5, 3\)"):
        make("attention").output_shape([(4, 3), (3, 5, 3)])


# --- multi_head_attention ----------------------------------------------------------------------
def copy_into_torch_mha(module, mha: nn.MultiheadAttention) -> None:
    with torch.no_grad():
        if mha._qkv_same_embed_dim:
            mha.in_proj_weight.copy_(torch.cat([module.query.weight, module.key.weight, module.value.weight]))
        else:
            mha.q_proj_weight.copy_(module.query.weight)
            mha.k_proj_weight.copy_(module.key.weight)
            mha.v_proj_weight.copy_(module.value.weight)
        mha.in_proj_bias.copy_(torch.cat([module.query.bias, module.key.bias, module.value.bias]))
        mha.out_proj.weight.copy_(module.output.weight)
        mha.out_proj.bias.copy_(module.output.bias)


@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_self_attention_equals_torch_multihead_attention(causal):
    torch.manual_seed(0)
    module = make("multi_head_attention", num_heads=4, causal=causal).build([(6, 16)]).eval()
    mha = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    copy_into_torch_mha(module, mha)
    assert sum(p.numel() for p in module.parameters()) == sum(p.numel() for p in mha.parameters())
    x = torch.randn(2, 6, 16)
    mask = ~causal_mask(6, 6) if causal else None  # torch: True = blocked
    expected, _ = mha(x, x, x, attn_mask=mask, need_weights=False)
    assert torch.allclose(module(x), expected, atol=1e-5)


def test_multi_head_cross_attention_equals_torch_with_kdim_vdim():
    torch.manual_seed(0)
    shapes = [(4, 8), (7, 5), (7, 3)]  # query, value, key
    module = make("multi_head_attention", num_heads=2).build(shapes).eval()
    mha = nn.MultiheadAttention(8, 2, kdim=3, vdim=5, batch_first=True).eval()
    copy_into_torch_mha(module, mha)
    q, v, k = torch.randn(2, 4, 8), torch.randn(2, 7, 5), torch.randn(2, 7, 3)
    expected, _ = mha(q, k, v, need_weights=False)
    assert torch.allclose(module(q, v, k), expected, atol=1e-5)


def test_multi_head_attention_equals_explicit_per_head_formula():
    torch.manual_seed(0)
    layer = make("multi_head_attention", num_heads=2, key_dim=3, value_dim=5, output_dim=7)
    module = layer.build([(4, 6), (5, 6)]).eval()
    q_in, v_in = torch.randn(2, 4, 6), torch.randn(2, 5, 6)
    q = module.query(q_in).view(2, 4, 2, 3).transpose(1, 2)
    k = module.key(v_in).view(2, 5, 2, 3).transpose(1, 2)
    v = module.value(v_in).view(2, 5, 2, 5).transpose(1, 2)
    heads = reference_attention(q, k, v, 1 / math.sqrt(3))  # (2, h, 4, 5)
    expected = module.output(heads.transpose(1, 2).reshape(2, 4, 10))
    assert layer.output_shape([(4, 6), (5, 6)]) == (4, 7)
    assert torch.allclose(module(q_in, v_in), expected, atol=1e-5)


def test_multi_head_attention_flops_by_hand():
    # query (4, 6), value (5, 3), key (5, 2); h=2, d_k = d_v = 6/2 = 3, out = 6, P = 20
    #   q proj 2·4·6·6 + 4·6 = 312, k proj 2·5·2·6 + 5·6 = 150, v proj 2·5·3·6 + 30 = 210,
    #   out proj 2·4·6·6 + 24 = 312, per head QKᵀ 120 + scale 20 + softmax 60 + A·V 120 = 320 (×2)
    shapes = [(4, 6), (5, 3), (5, 2)]
    layer = make("multi_head_attention", num_heads=2)
    assert layer.flops(shapes, (4, 6)) == 312 + 150 + 210 + 312 + 2 * 320 == 1624
    module = layer.build(shapes)
    counted = matmul_flops(lambda: module(torch.randn(1, 4, 6), torch.randn(1, 5, 3), torch.randn(1, 5, 2)))
    assert counted == 288 + 120 + 180 + 288 + 2 * (120 + 120)  # the same without biases, scale, softmax


def test_multi_head_width_not_divisible_by_heads_is_a_shape_error():
    with pytest.raises(ShapeError) as e:
        make("multi_head_attention", num_heads=4).output_shape([(5, 30)])
    assert "30" in e.value.message and "num_heads=4" in e.value.message and "key_dim" in e.value.hint
    assert make("multi_head_attention", num_heads=4, key_dim=8).output_shape([(5, 30)]) == (5, 30)


# --- GPU (skipped without CUDA) -----------------------------------------------------------------
GPU_CASES = [
    ("self_attention", {"causal": True}, [(16, 32)]),
    ("attention", {"use_scale": True, "causal": True}, [(16, 32), (24, 32)]),
    ("multi_head_attention", {"num_heads": 4, "causal": True}, [(16, 32)]),
    ("multi_head_attention", {"num_heads": 4}, [(16, 32), (24, 32)]),
    ("sparse_attention", {"window": 4, "stride": 4, "num_heads": 4}, [(16, 32)]),
]


@pytest.mark.cuda
@pytest.mark.parametrize("type_, kw, shapes", GPU_CASES)
def test_cuda_matches_cpu_and_runs_a_fused_kernel(type_, kw, shapes, monkeypatch):
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    torch.manual_seed(0)
    module = make(type_, **kw).build(shapes).eval()
    xs = [torch.randn(2, *s) for s in shapes]
    expected = module(*xs)
    module.cuda()
    assert torch.allclose(module(*[x.cuda() for x in xs]).cpu(), expected, atol=1e-4)
    # fp16 through the fused kernels only (flash / memory-efficient): raises if SDPA had to fall back to math
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]), torch.no_grad():
        y = module.half()(*[x.cuda().half() for x in xs])
    assert torch.allclose(y.float().cpu(), expected, atol=2e-2)
