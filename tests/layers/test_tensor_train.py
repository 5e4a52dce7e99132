"""tt_dense: exact against a dense weight (TT-SVD) and TensorLy-Torch's BlockTT layer, FLOPs against
FlopCounterMode on the real forward, the parameter count, the init variance of nn.Linear, and the errors
of the automatic factorisation."""
from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import layerforge as lf
from layerforge.errors import ShapeError, SpecError
from layerforge.layers.tensor_train import TTDense, TTLinear, balanced_modes, full_ranks, tt_svd, tt_to_matrix


def tt(**kw) -> TTDense:
    return TTDense(type="tt_dense", **kw)


# --- exactness -----------------------------------------------------------------------------------
@pytest.mark.parametrize("ins,outs", [((2, 3, 4), (3, 4, 5)), ((4, 4), (8, 2)), ((2, 2, 2, 3), (3, 1, 2, 2))])
def test_full_rank_tt_svd_reproduces_a_random_dense_weight_exactly(ins, outs):
    torch.manual_seed(0)
    w = torch.randn(math.prod(outs), math.prod(ins))
    layer = TTLinear.from_dense(w, None, ins, outs)  # ranks=None: the full ranks
    assert list(layer.ranks[1:-1]) == full_ranks(ins, outs)
    x = torch.randn(16, math.prod(ins))
    torch.testing.assert_close(layer.to_dense(), w, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer(x), x @ w.T, rtol=1e-5, atol=1e-4)


def test_tt_svd_recovers_a_matrix_of_low_tt_rank_exactly_at_that_rank():
    torch.manual_seed(1)
    ins, outs, ranks = (4, 5, 3), (3, 4, 6), (1, 3, 2, 1)
    cores = [torch.randn(ranks[k], outs[k], ins[k], ranks[k + 1], dtype=torch.float64) for k in range(3)]
    w = tt_to_matrix(cores)
    approx = tt_to_matrix(tt_svd(w, ins, outs, ranks=[3, 2]))
    torch.testing.assert_close(approx, w, rtol=1e-10, atol=1e-10)
    assert (tt_to_matrix(tt_svd(w, ins, outs, ranks=1)) - w).abs().max() > 1e-2  # a lower rank cannot


def test_tt_to_matrix_is_the_independent_entrywise_definition():
    """W[(i1 i2), (j1 j2)] = G1[0, i1, j1, :] · G2[:, i2, j2, 0], checked entry by entry."""
    torch.manual_seed(2)
    g1, g2 = torch.randn(1, 2, 3, 4), torch.randn(4, 5, 2, 1)
    w = tt_to_matrix([g1, g2])
    for i1, i2, j1, j2 in [(0, 0, 0, 0), (1, 4, 2, 1), (1, 2, 0, 1), (0, 3, 2, 0)]:
        expect = g1[0, i1, j1, :] @ g2[:, i2, j2, 0]
        torch.testing.assert_close(w[i1 * 5 + i2, j1 * 2 + j2], expect)


def test_output_equals_tensorly_torch_blocktt_layer_with_the_same_cores():
    tltorch = pytest.importorskip("tltorch", reason="TensorLy-Torch is a dev-only reference: pip install -e '.[dev]'")
    torch.manual_seed(3)
    ins, outs, rank = (4, 4, 4), (2, 5, 3), 3
    ref = tltorch.FactorizedLinear(in_tensorized_features=ins, out_tensorized_features=outs, factorization="blocktt",
                                   rank=rank, bias=True)
    ours = tt(units=30, in_modes=list(ins), out_modes=list(outs), ranks=rank).build([(64,)])
    assert [tuple(f.shape) for f in ref.weight.factors] == [tuple(c.shape) for c in ours.cores]
    with torch.no_grad():
        for src, dst in zip(ref.weight.factors, ours.cores):
            dst.copy_(src)
        ours.bias.copy_(ref.bias)
    x = torch.randn(8, 64)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.to_dense(), ref.weight.to_matrix(), rtol=1e-5, atol=1e-6)


def test_leading_axes_are_kept_and_activation_applied():
    layer = tt(units=12, in_modes=[2, 4], out_modes=[3, 4], ranks=2, activation="relu")
    assert layer.output_shape([(5, 8)]) == (5, 12)
    m = layer.build([(5, 8)])
    x = torch.randn(3, 5, 8)
    tt_mod = m[0]
    expect = torch.relu(x @ tt_mod.to_dense().T + tt_mod.bias)
    torch.testing.assert_close(m(x), expect, rtol=1e-5, atol=1e-6)


# --- counts --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw,width", [
    ({"units": 256, "ranks": 8}, 64),
    ({"units": 30, "in_modes": [4, 4, 4], "out_modes": [2, 5, 3], "ranks": [3, 5]}, 64),
    ({"units": 64, "cores": 4, "ranks": 4, "use_bias": False}, 256),
    ({"units": 10, "cores": 2, "ranks": "full"}, 100),
])
def test_flops_equal_flop_counter_mode_on_the_actual_forward_and_params_the_formula(kw, width):
    layer = tt(**kw)
    m = layer.build([(width,)])
    ins, outs, ranks = m.in_modes, m.out_modes, m.ranks
    batch = 7
    with FlopCounterMode(display=False) as counter:
        m(torch.randn(batch, width))
    bias = layer.units if layer.use_bias else 0
    assert counter.get_total_flops() == batch * (layer.flops([(width,)], (layer.units,)) - bias)
    # by hand for the first case, modes 4·4·4 → 8·4·8: steps (1·16·4·1·8·8) + (8·4·4·8·4·8) + (32·1·4·8·8·1), ×2
    if kw == {"units": 256, "ranks": 8}:
        assert layer.flops([(width,)], (256,)) == 2 * (4096 + 32768 + 8192) + 256
    params = sum(ranks[k] * outs[k] * ins[k] * ranks[k + 1] for k in range(len(ins))) + bias
    assert sum(p.numel() for p in m.parameters()) == params


def test_summary_shows_the_compression_against_the_dense_layer():
    spec = {"model": {"input_shape": [64], "layers": [{"type": "tt_dense", "name": "tt", "units": 256, "ranks": 8},
                                                     {"type": "dense", "units": 10}]}}
    s = lf.summarize(spec)
    row = s.layers[0]
    assert row.params == 1 * 8 * 4 * 8 + 8 * 4 * 4 * 8 + 8 * 8 * 4 * 1 + 256  # modes 4·4·4 → 8·4·8, + bias
    assert row.info["dense_params"] == 64 * 256 + 256
    assert row.info["compression"] == round((64 * 256 + 256) / row.params, 2)
    assert row.info["modes"] == "4·4·4 → 8·4·8" and row.info["ranks"] == [8, 8]
    assert s.layers[1].info == {}


def test_ranks_above_a_bonds_full_rank_are_capped_to_it():
    m = tt(units=8, in_modes=[2, 4], out_modes=[2, 4], ranks=100).build([(8,)])
    assert m.ranks == (1, 4, 1)  # min(2·2, 4·4)
    assert full_ranks((2, 3, 4), (3, 4, 5)) == [6, 20]  # min(6, 240), min(72, 20)


# --- initialisation ------------------------------------------------------------------------------
@pytest.mark.parametrize("ins,outs,ranks,k", [((4, 4, 4), (4, 4, 4), (1, 4, 4, 1), 2500), ((8, 8), (8, 8), (1, 16, 1), 1000)])
def test_init_gives_the_output_variance_of_nn_linear(ins, outs, ranks, k):
    """Over K independent inits, mean(y²) for a fixed x estimates Var(y) = ‖x‖²/(3N), nn.Linear's (its
    default init: Kaiming-uniform a=√5, Var(W) = 1/(3N)). K is chosen so the standard error is below 1 %:
    the 4 % tolerance is then over 4 standard errors (no false failures) while an init that misses the
    rank product or the 1/3 is off by ≥ 3× (it cannot pass by accident)."""
    torch.manual_seed(4)
    m = TTLinear(ins, outs, ranks, bias=False)
    n = m.in_features
    lin = nn.Linear(n, m.out_features, bias=False)
    x = torch.randn(1, n)
    target = x.square().sum() / (3 * n)
    ours, dense = torch.empty(k), torch.empty(k)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of tiny ops: a thread pool only adds waits on a busy machine
    try:
        with torch.no_grad():
            for i in range(k):
                m.reset_parameters()
                lin.reset_parameters()
                ours[i], dense[i] = m(x).square().mean(), lin(x).square().mean()
    finally:
        torch.set_num_threads(threads)
    for s in (ours, dense):
        ratio, se = (s.mean() / target).item(), (s.std() / target / math.sqrt(k)).item()
        assert se < 0.01, se
        assert abs(ratio - 1) < 0.04, (ratio, se)


# --- automatic modes and errors ------------------------------------------------------------------
def test_automatic_modes_are_the_most_balanced_split():
    assert balanced_modes(64, 3) == (4, 4, 4)
    assert balanced_modes(256, 3) == (4, 8, 8)
    assert balanced_modes(784, 3) == (7, 8, 14)  # max 14 is the least possible; 7+8+14 < 4+14+14
    assert balanced_modes(1000, 3) == (10, 10, 10)
    assert balanced_modes(97, 3) is None
    m = tt(units=256).build([(784,)])
    assert (m.in_modes, m.out_modes) == ((8, 7, 14), (8, 4, 8))  # the two largest at the ends
    assert tt(units=1024, cores=4).build([(1024,)]).in_modes == (8, 4, 4, 8)


def test_the_automatic_order_gives_the_fewest_parameters_of_all_orders():
    """Over every permutation of the balanced in and out modes, at uniform rank 8."""
    import itertools

    def params(ins, outs):
        r = [1, *(min(8, f) for f in full_ranks(ins, outs)), 1]
        return sum(r[k] * ins[k] * outs[k] * r[k + 1] for k in range(len(ins)))

    for n, m, d in [(256, 256, 3), (64, 256, 3), (784, 256, 3), (1024, 1024, 4)]:
        auto = tt(units=m, cores=d).build([(n,)])
        best = min(params(pi, po) for pi in itertools.permutations(balanced_modes(n, d))
                   for po in itertools.permutations(balanced_modes(m, d)))
        assert params(auto.in_modes, auto.out_modes) == best


def test_a_prime_input_width_is_a_located_error_with_widths_that_work():
    spec = {"model": {"input_shape": [97], "layers": [{"type": "tt_dense", "name": "t", "units": 64},
                                                     {"type": "dense", "units": 4}]}}
    with pytest.raises(SpecError) as e:
        lf.validate(spec)
    (issue,) = e.value.issues
    assert issue.path == ("model", "layers", 0) and issue.layer == "tt_dense 't'"
    assert "width 97 with 3 cores: 97 is prime" in issue.message
    assert "96 = 4·4·6" in issue.hint and "in_modes explicitly" in issue.hint


def test_lopsided_width_is_refused_but_explicit_modes_work():
    with pytest.raises(ShapeError, match=r"2·53, is lopsided"):
        tt(units=16, cores=2).output_shape([(106,)])
    assert tt(units=16, in_modes=[2, 53]).output_shape([(106,)]) == (16,)


@pytest.mark.parametrize("kw,match", [
    ({"units": 10}, r"width 10 with 3 cores: 10 has fewer than 3 prime factors.*use 2 cores \(10 = 2·5\)"),
    ({"units": 12, "out_modes": [3, 5]}, r"multiply to 15, not units = 12"),
    ({"units": 12, "in_modes": [2, 2], "out_modes": [2, 2, 3]}, r"in_modes has 2 entries and out_modes 3"),
    ({"units": 64, "ranks": [2, 2, 2]}, r"3 cores have 2 bonds, so ranks needs 2 entries"),
    ({"units": 64, "in_modes": [8, 8], "cores": 3}, r"cores: 3 disagrees with the 2 modes"),
])
def test_inconsistent_parameters_are_refused_with_what_to_change(kw, match):
    with pytest.raises(ValidationError, match=match):
        tt(**kw)


def test_in_modes_that_do_not_multiply_to_the_input_width_are_a_shape_error():
    with pytest.raises(ShapeError, match=r"in_modes \[4, 4\] multiply to 16, but the input width is 20"):
        tt(units=16, in_modes=[4, 4]).output_shape([(20,)])


@pytest.mark.cuda
def test_cuda_forward_equals_the_cpu_one():
    torch.manual_seed(0)
    m = tt(units=256, ranks=8).build([(64,)])
    x = torch.randn(4, 64)
    y = m(x)
    torch.testing.assert_close(m.cuda()(x.cuda()).cpu(), y.detach(), rtol=1e-4, atol=1e-5)
