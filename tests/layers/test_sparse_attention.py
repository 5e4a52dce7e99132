"""sparse_attention: every pattern and backend equals the dense masked reference (outputs and input/weight
gradients, within 1e-5 in fp32); pair counts equal the dense mask; the FLOPs are the work the kernel really
does (its matmuls counted by torch's FlopCounterMode); the blocked path's memory grows linearly in T; a
padding mask keeps the blocked kernel when causal and right-padded, else runs the masked backend."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

import layerforge.layers.attention as attention
import layerforge.layers.sparse_kernels as sk
from layerforge.layers.sparse_flex import block_layout
from layerforge.errors import ShapeError
from layerforge.layers import get_layer_type
from layerforge.layers.sparse_attention import sparse_mask, sparse_pairs
from layerforge.layers.sparse_patterns import Pattern

# (pattern parameters) — every pattern, with and without global tokens where they apply
PATTERNS = {
    "sliding": {"pattern": "sliding", "window": 3},
    "sliding+global": {"pattern": "sliding", "window": 3, "global_tokens": 2},
    "dilated": {"pattern": "dilated", "window": 2, "dilation": 3},
    "strided": {"pattern": "strided", "window": 3, "stride": 4},
    "block_local": {"pattern": "block_local", "window": 4},
    "block_local+global": {"pattern": "block_local", "window": 5, "global_tokens": 3},
}
BLOCK = 4


def make(**kw):
    return get_layer_type("sparse_attention").model_validate({"type": "sparse_attention", **kw})


def copy_into_torch_mha(module, mha: nn.MultiheadAttention) -> None:
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([module.query.weight, module.key.weight, module.value.weight]))
        mha.in_proj_bias.copy_(torch.cat([module.query.bias, module.key.bias, module.value.bias]))
        mha.out_proj.weight.copy_(module.output.weight)
        mha.out_proj.bias.copy_(module.output.bias)


def outputs_and_grads(module, x):
    x = x.clone().requires_grad_(True)
    y = module(x)
    y.backward(torch.linspace(-1, 1, y.numel()).view_as(y))  # a non-uniform upstream gradient
    grads = [x.grad] + [p.grad for p in module.parameters()]
    return y.detach(), grads


# --- the proof: every pattern × backend × length × causality × heads equals the masked reference ----------
@pytest.mark.parametrize("heads", [1, 3])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("t", [16, 19])  # a multiple of the block size, and not
@pytest.mark.parametrize("name", list(PATTERNS))
def test_blocked_equals_masked_reference_outputs_and_gradients(name, t, causal, heads, monkeypatch):
    monkeypatch.setattr(sk, "CHUNK_SCORES", 1)  # one block per chunk, so the chunked backward is exercised
    torch.manual_seed(0)
    kw = {**PATTERNS[name], "causal": causal, "num_heads": heads, "block_size": BLOCK}
    blocked = make(**kw, backend="blocked").build([(t, 6 * heads)])
    masked = make(**kw, backend="masked").build([(t, 6 * heads)])
    masked.load_state_dict(blocked.state_dict())
    x = torch.randn(2, t, 6 * heads)
    y_b, g_b = outputs_and_grads(blocked, x)
    y_m, g_m = outputs_and_grads(masked, x)
    assert torch.allclose(y_b, y_m, atol=1e-5, rtol=0)
    for a, b in zip(g_b, g_m):
        assert torch.allclose(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("name", list(PATTERNS))
def test_masked_backend_equals_torch_multihead_attention_with_the_pattern_mask(name, causal):
    torch.manual_seed(0)
    layer = make(**PATTERNS[name], causal=causal, num_heads=2, backend="masked")
    module = layer.build([(13, 8)]).eval()
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    copy_into_torch_mha(module, mha)
    x = torch.randn(2, 13, 8)
    mask = sk.pattern_mask(layer.sparse_pattern(), 13, 13)
    expected, _ = mha(x, x, x, attn_mask=~mask, need_weights=False)
    assert torch.allclose(module(x), expected, atol=1e-5)


def test_default_chunking_on_a_sequence_longer_than_one_chunk():
    torch.manual_seed(0)
    p = Pattern("strided", 16, True, stride=64)
    t = sk.BlockedPlan(p, 1000, 64, 2).chunk + 77
    q, k, v = (torch.randn(1, 2, t, 8, requires_grad=True) for _ in range(3))
    out = sk.blocked_attention(q, k, v, p)
    ref = sk.masked_attention(q, k, v, p)
    g = torch.randn_like(out)
    assert torch.allclose(out, ref, atol=1e-5)
    for a, b in zip(torch.autograd.grad(out, (q, k, v), g), torch.autograd.grad(ref, (q, k, v), g)):
        assert torch.allclose(a, b, atol=1e-5)


def test_blocked_backward_passes_gradcheck_in_float64_with_dropout(monkeypatch):
    """The backward recomputes each chunk: with a fixed dropout seed it redraws the forward's masks exactly."""
    monkeypatch.setattr(sk, "CHUNK_SCORES", 1)
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 7, 2, dtype=torch.float64, requires_grad=True) for _ in range(3))
    plan = sk.BlockedPlan(Pattern("sliding", 3, False, global_tokens=1), 7, 2)
    fn = sk._function().apply
    assert torch.autograd.gradcheck(lambda a, b, c: fn(a, b, c, plan, 0.5, 0.3, 1234), (q, k, v))
    assert not torch.equal(fn(q, k, v, plan, 0.5, 0.3, 1234), fn(q, k, v, plan, 0.5, 0.0, None))


def test_attention_dropout_acts_only_in_training():
    torch.manual_seed(0)
    module = make(window=3, num_heads=2, dropout=0.5).build([(10, 8)])
    x = torch.randn(2, 10, 8)
    module.eval()
    assert torch.equal(module(x), module(x))
    module.train()
    assert not torch.allclose(module(x), module.eval()(x))


# --- patterns, by hand and against the dense mask --------------------------------------------------------
def test_sparse_mask_causal_window_and_stride_by_hand():
    # T=6, window 2, stride 3, causal: row i sees i, i−1 and i−3
    expected = torch.tensor([
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [0, 1, 1, 0, 0, 0],
        [1, 0, 1, 1, 0, 0],
        [0, 1, 0, 1, 1, 0],
        [0, 0, 1, 0, 1, 1],
    ], dtype=torch.bool)
    assert torch.equal(sparse_mask(6, 6, window=2, stride=3, causal=True), expected)
    assert sparse_pairs(6, 2, 3, True) == 14


def test_dilated_block_local_and_global_patterns_by_hand():
    # dilated, window 2, dilation 2, causal: row 5 sees 5 and 3; two-sided also 7
    dil = sk.pattern_mask(Pattern("dilated", 2, True, dilation=2), 8, 8)
    assert dil[5].nonzero().flatten().tolist() == [3, 5]
    assert sk.pattern_mask(Pattern("dilated", 2, False, dilation=2), 8, 8)[5].nonzero().flatten().tolist() == [3, 5, 7]
    # block_local, window 3, one global token, two-sided: row 4 sees its block 3..5 and the global 0;
    # row 0 (global) sees everything
    bl = sk.pattern_mask(Pattern("block_local", 3, False, global_tokens=1), 7, 7)
    assert bl[4].nonzero().flatten().tolist() == [0, 3, 4, 5]
    assert bool(bl[0].all()) and bool(bl[:, 0].all())


@pytest.mark.parametrize("t", [1, 2, 5, 16, 33])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("kind, extra", [("sliding", {}), ("sliding", {"global_tokens": 3}), ("dilated", {"dilation": 3}),
                                         ("strided", {"stride": 3}), ("block_local", {}),
                                         ("block_local", {"global_tokens": 2})])
@pytest.mark.parametrize("window", [1, 2, 4, 40])
def test_attended_pair_count_equals_the_dense_mask(t, causal, kind, extra, window):
    p = Pattern(kind, window, causal, **extra)
    mask = sk.pattern_mask(p, t, t).numpy()
    assert p.attended_pairs(t) == int(mask.sum())
    assert np.array_equal(p.row_counts(t), mask.sum(1))


def test_old_style_window_and_stride_means_the_strided_pattern():
    assert make(window=4, stride=4).pattern == "strided"
    assert make(window=4).pattern == "sliding"


@pytest.mark.parametrize("kw, message", [
    ({"pattern": "strided"}, "needs a stride"),
    ({"pattern": "sliding", "stride": 3}, "stride only applies to pattern strided"),
    ({"pattern": "sliding", "dilation": 3}, "dilation only applies"),
    ({"pattern": "strided", "stride": 2, "global_tokens": 1}, "global_tokens applies to patterns sliding and block_local"),
    ({"backend": "flex", "block_size": 24}, "multiple of 16"),
])
def test_options_that_do_not_fit_the_pattern_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        make(window=4, **kw)


def test_sparse_attention_needs_a_sequence():
    with pytest.raises(ShapeError, match=r"sparse_attention needs its input as a sequence \(T, D\), got \(3, 4, 4\)"):
        make(window=2).output_shape([(3, 4, 4)])


# --- FLOPs: the work really done -----------------------------------------------------------------------
def test_blocked_flops_by_hand_count_computed_scores_including_masked_ones():
    # T=10, D=4, h=1, window 3 causal, block 4: 3 query blocks × 4 queries × (4 + 2) keys = 72 computed scores;
    # attended: 1 + 2 + 3·8 = 27. Projections 4·(2·10·4·4 + 10·4) = 1440; per score 2·4 + 1 + 3 + 2·4 = 20.
    layer = make(window=3, block_size=4, backend="blocked")
    assert layer.pairs(10) == 27 and layer.computed_pairs(10) == 72
    assert layer.flops([(10, 4)], (10, 4)) == 1440 + 72 * 20
    assert make(window=3, block_size=4, backend="masked").flops([(10, 4)], (10, 4)) == 1440 + 100 * 20
    assert layer.extra_info([(10, 4)], (10, 4)) == {"backend": "blocked", "attended_pairs": 27, "computed_pairs": 72}


@pytest.mark.parametrize("name", list(PATTERNS))
@pytest.mark.parametrize("causal", [True, False])
def test_computed_pairs_equal_the_kernels_matmul_flops(name, causal, monkeypatch):
    """FlopCounterMode sees every matmul of the blocked kernel: Q·Kᵀ and A·V cost 2·(d_k + d_v) per score."""
    monkeypatch.setattr(sk, "CHUNK_SCORES", 1)
    layer = make(**PATTERNS[name], causal=causal, block_size=BLOCK, backend="blocked")
    t, heads, dk, dv = 23, 2, 5, 3
    q, k, v = torch.randn(1, heads, t, dk), torch.randn(1, heads, t, dk), torch.randn(1, heads, t, dv)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:  # global rows use SDPA
        sk.blocked_attention(q, k, v, layer.sparse_pattern(), block=BLOCK)
    assert counter.get_total_flops() == heads * layer.computed_pairs(t) * 2 * (dk + dv)


def test_auto_runs_blocked_unless_it_would_do_half_the_dense_work():
    layer = make(window=256)  # 64 + 255 scores per query on the blocked kernel
    assert [layer.backend_for(t) for t in (512, 638, 639, 1024, 16384)] == ["masked"] * 2 + ["blocked"] * 3
    assert layer.computed_pairs(512) == 512 * 512 and layer.computed_pairs(1024) == 1024 * 319
    assert make(window=4).backend_for(8) == "masked" and make(window=8).backend_for(1024) == "blocked"
    assert make(window=256, backend="blocked").backend_for(512) == "blocked"


def test_sliding_window_does_linear_work():
    layer = make(window=256)
    per_query = [layer.computed_pairs(t) / t for t in (4096, 8192, 16384)]
    assert per_query[0] == per_query[1] == per_query[2] == 64 + 255  # one block plus the reach, per query
    assert make(window=256, backend="masked").computed_pairs(16384) == 16384 ** 2
    # small windows get small blocks (less of each block's key range is masked): 16 per query block for w = 8
    assert [make(window=w).block for w in (8, 40, 256)] == [16, 48, 64]
    assert make(window=8).computed_pairs(1024) == 1024 * (16 + 7)


# --- memory: linear in T, never T×T ----------------------------------------------------------------------
def test_blocked_training_memory_at_t_8192_stays_under_a_linear_bound():
    """Peak bytes of one forward+backward, measured with the profiler's allocation tracking (analysis.memory)."""
    from layerforge.analysis.memory import track

    t, d, window = 8192, 16, 64
    pattern = Pattern("sliding", window, True)
    q, k, v = (torch.randn(1, 1, t, d, requires_grad=True) for _ in range(3))

    def step(phase):
        with phase("forward"):
            out = sk.blocked_attention(q, k, v, pattern)
        with phase("backward"):
            out.backward(torch.ones_like(out))

    peak = track(step, "cpu").peak
    plan = sk.BlockedPlan(pattern, t, 64, 1)
    # linear in T: out, its gradient and dq, dk, dv (5 · T · d floats), plus one chunk's work: its scores and
    # their gradients, the gathered keys and values (a dozen chunk × (b + reach) tensors at most), in fp32
    bound = 4 * (5 * t * d + 12 * plan.chunk * plan.local_keys + 12 * plan.chunk * d)
    assert peak <= bound, (peak, bound)
    assert bound < t * t  # so a single T×T bool mask (64 MiB) alone would fail the test


# --- flex: the block mask's layout (CPU), the fused kernel itself (CUDA) ------------------------------------
@pytest.mark.parametrize("name", list(PATTERNS))
@pytest.mark.parametrize("causal", [True, False])
def test_flex_block_layout_lists_exactly_the_blocks_the_dense_mask_touches(name, causal):
    p = make(**PATTERNS[name], causal=causal).sparse_pattern()
    t, b = 45, 8
    dense = sk.pattern_mask(p, t, t)
    nb = math.ceil(t / b)
    padded = torch.zeros(nb * b, nb * b, dtype=torch.bool)
    padded[:t, :t] = dense
    real = torch.zeros_like(padded)
    real[:t, :t] = True
    blocks = padded.view(nb, b, nb, b).permute(0, 2, 1, 3).flatten(2)
    real_blocks = real.view(nb, b, nb, b).permute(0, 2, 1, 3).flatten(2)
    touched, full = block_layout(p, t, b)
    assert torch.equal(touched, blocks.any(-1))
    assert torch.equal(full, (blocks | ~real_blocks).all(-1))


@pytest.mark.cuda
@pytest.mark.parametrize("name", list(PATTERNS))
def test_flex_backend_on_cuda_equals_the_masked_reference(name):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    torch.manual_seed(0)
    kw = {**PATTERNS[name], "num_heads": 2, "block_size": 16}
    flex = make(**kw, backend="flex").build([(50, 16)]).cuda()
    masked = make(**kw, backend="masked").build([(50, 16)]).cuda()
    masked.load_state_dict(flex.state_dict())
    x = torch.randn(2, 50, 16, device="cuda")
    y_f, g_f = outputs_and_grads(flex, x)
    y_m, g_m = outputs_and_grads(masked, x)
    assert torch.allclose(y_f, y_m, atol=1e-4)
    for a, b in zip(g_f, g_m):
        assert torch.allclose(a, b, atol=1e-4)


def test_flex_backend_off_cuda_is_a_clear_error():
    from layerforge.errors import UsageError

    module = make(window=4, backend="flex").build([(16, 8)])
    with pytest.raises(UsageError, match="CUDA only"):
        module(torch.randn(1, 16, 8))


@pytest.mark.parametrize("backend", ["blocked", "masked"])
def test_training_after_inference_mode_reuses_its_cached_masks(backend):
    """Masks cached while predicting under torch.inference_mode must still be usable when training."""
    sk._band_blocked.cache_clear()
    module = make(window=3, num_heads=2, backend=backend, block_size=4).build([(10, 8)])
    x = torch.randn(2, 10, 8)
    with torch.inference_mode():
        module(x)
    module(x).sum().backward()
    assert module.query.weight.grad is not None


def test_inspect_shows_attended_beside_computed_pairs(tmp_path, capsys):
    import json

    from tests.helpers import run_cli, write_spec

    path = write_spec(tmp_path, """
        model:
          input_shape: [10, 4]
          layers:
            - {type: sparse_attention, window: 3, block_size: 4, backend: blocked, name: attn}
    """)
    r = run_cli(capsys, "inspect", str(path), "--format", "json")
    assert json.loads(r.out)["layers"][0]["info"] == {"backend": "blocked", "attended_pairs": 27, "computed_pairs": 72}
    r = run_cli(capsys, "inspect", str(path))
    assert "attended pairs: 27" in r.out and "computed pairs: 72" in r.out  # format_info, as extra_info is shown


# --- padding masks (variable-length sequences, docs/sequences.md) -----------------------------------------
@pytest.mark.parametrize("causal", [True, False])
def test_a_padding_mask_runs_blocked_when_causal_and_right_padded_else_the_masked_backend(causal, monkeypatch):
    """Causal and right-padded: a valid query's keys are all valid, so the blocked kernel runs as it is and
    gives the masked reference's values at the valid steps; otherwise (not causal, or a valid step after a
    padded one) the padded keys go through the masked backend."""
    torch.manual_seed(0)
    module = make(pattern="sliding", window=3, num_heads=2, causal=causal, backend="blocked").build([(19, 8)]).eval()
    x = torch.randn(3, 19, 8)
    right = torch.arange(19) < torch.tensor([19, 11, 4])[:, None]  # (B, T) valid steps first
    gap = right.clone()
    gap[1, 5] = False  # a padded step inside sequence 1
    masked_calls = []
    real_masked = sk.masked_attention
    monkeypatch.setattr(sk, "masked_attention", lambda *a, **k: masked_calls.append(1) or real_masked(*a, **k))
    with torch.no_grad():
        y = module(x, masks=[right])
        assert len(masked_calls) == (0 if causal else 1)
        module(x, masks=[gap])
        assert len(masked_calls) == (1 if causal else 2)
        monkeypatch.setattr(attention, "right_padded", lambda _: False)
        reference = module(x, masks=[right])  # the masked backend, the padded keys removed from the pattern
        assert len(masked_calls) == (2 if causal else 3)
    torch.testing.assert_close(y[right], reference[right], rtol=0, atol=1e-5)
