"""batchnorm and layernorm against their hand formulas (train, eval, running statistics), the
center/scale switches, parameter counts, FLOPs by hand and argument checks."""
from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from layerforge.errors import ShapeError
from layerforge.layers.norm import BatchNorm, LayerNorm


def _randomise_affine(m: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p))


@pytest.mark.parametrize("shape,reduce", [((6,), (0,)), ((4, 7), (0, 2)), ((3, 5, 5), (0, 2, 3))])
def test_batchnorm_training_uses_batch_stats_and_updates_running_stats(shape, reduce):
    layer = BatchNorm(type="batchnorm", momentum=0.3, epsilon=1e-3)
    torch.manual_seed(0)
    m = layer.build([shape])
    _randomise_affine(m)
    m.train()
    x = torch.randn(8, *shape) * 2 + 1
    y = m(x)

    bshape = (1, shape[0], *[1] * (len(shape) - 1))  # per channel, broadcast over batch and positions
    mu = x.mean(dim=reduce, keepdim=True)
    var = x.var(dim=reduce, unbiased=False, keepdim=True)
    gamma, beta = m.weight.view(bshape), m.bias.view(bshape)
    torch.testing.assert_close(y, (x - mu) / torch.sqrt(var + 1e-3) * gamma + beta)

    n = x.numel() // shape[0]
    unbiased = var.flatten() * n / (n - 1)
    torch.testing.assert_close(m.running_mean, 0.7 * torch.zeros(shape[0]) + 0.3 * mu.flatten())
    torch.testing.assert_close(m.running_var, 0.7 * torch.ones(shape[0]) + 0.3 * unbiased)


def test_batchnorm_eval_uses_the_running_statistics():
    layer = BatchNorm(type="batchnorm")
    m = layer.build([(3, 4, 4)])
    _randomise_affine(m)
    with torch.no_grad():
        m.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
        m.running_var.copy_(torch.tensor([4.0, 0.25, 1.0]))
    m.eval()
    x = torch.randn(2, 3, 4, 4)
    b = (1, 3, 1, 1)
    ref = (x - m.running_mean.view(b)) / torch.sqrt(m.running_var.view(b) + 1e-5) * m.weight.view(b) + m.bias.view(b)
    torch.testing.assert_close(m(x), ref)


def test_batchnorm_picks_the_torch_class_from_the_input_rank():
    bn = lambda s: type(BatchNorm(type="batchnorm").build([s]))  # noqa: E731
    assert bn((6,)) is torch.nn.BatchNorm1d
    assert bn((6, 10)) is torch.nn.BatchNorm1d
    assert bn((6, 4, 4)) is torch.nn.BatchNorm2d
    assert bn((6, 2, 4, 4)) is torch.nn.BatchNorm3d


@pytest.mark.parametrize("center,scale,names", [(True, True, ["weight", "bias"]), (False, True, ["weight"]),
                                                (True, False, ["bias"]), (False, False, [])])
def test_center_and_scale_choose_which_affine_parameters_exist(center, scale, names):
    for layer, shape in [(BatchNorm(type="batchnorm", center=center, scale=scale), (6, 3, 3)),
                         (LayerNorm(type="layernorm", center=center, scale=scale), (5, 6))]:
        m = layer.build([shape])
        assert [n for n, _ in m.named_parameters()] == names
        assert sum(p.numel() for p in m.parameters()) == 6 * len(names)
        m.train()
        x = torch.randn(4, *shape)
        assert m(x).shape == x.shape


def test_batchnorm_without_scale_is_the_plain_standardisation_plus_beta():
    m = BatchNorm(type="batchnorm", scale=False).build([(2, 3, 3)])
    with torch.no_grad():
        m.bias.copy_(torch.tensor([1.0, -2.0]))
    x = torch.randn(5, 2, 3, 3)
    mu, var = x.mean((0, 2, 3), keepdim=True), x.var((0, 2, 3), unbiased=False, keepdim=True)
    torch.testing.assert_close(m(x), (x - mu) / torch.sqrt(var + 1e-5) + torch.tensor([1.0, -2.0]).view(1, 2, 1, 1))


def test_batchnorm_parameters_and_buffers():
    m = BatchNorm(type="batchnorm").build([(6, 5, 5)])
    assert sum(p.numel() for p in m.parameters()) == 2 * 6  # γ and β
    assert m.running_mean.numel() == m.running_var.numel() == 6


@pytest.mark.parametrize("shape", [(16,), (10, 16), (2, 3, 16)])
def test_layernorm_equals_its_formula_over_the_last_axis(shape):
    layer = LayerNorm(type="layernorm", epsilon=1e-4)
    m = layer.build([shape])
    _randomise_affine(m)
    x = torch.randn(3, *shape) * 3 + 2
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    torch.testing.assert_close(m(x), (x - mu) / torch.sqrt(var + 1e-4) * m.weight + m.bias)
    assert layer.output_shape([shape]) == shape
    assert sum(p.numel() for p in m.parameters()) == 2 * shape[-1]


def test_norm_flops_by_hand():
    # batchnorm (6, 5, 5): N = 150; 2·150 (subtract, divide) + 6 sqrt + 150 (×γ) + 150 (+β) = 606
    assert BatchNorm(type="batchnorm").flops([(6, 5, 5)], (6, 5, 5)) == 606
    # without γ and β: 300 + 6 = 306
    assert BatchNorm(type="batchnorm", center=False, scale=False).flops([(6, 5, 5)], (6, 5, 5)) == 306
    # layernorm (10, 16): N = 160, 10 vectors; 5·160 + 10 sqrt + 2·160 affine = 1130
    assert LayerNorm(type="layernorm").flops([(10, 16)], (10, 16)) == 1130
    # layernorm (16,) without affine: 5·16 + 1 = 81
    assert LayerNorm(type="layernorm", center=False, scale=False).flops([(16,)], (16,)) == 81


@pytest.mark.parametrize("momentum", [0.0, -0.1, 1.5])
def test_batchnorm_momentum_outside_0_1_is_refused_with_the_value(momentum):
    with pytest.raises(ValidationError, match=f"got {momentum}"):
        BatchNorm(type="batchnorm", momentum=momentum)


def test_non_positive_epsilon_is_refused():
    with pytest.raises(ValidationError):
        BatchNorm(type="batchnorm", epsilon=0)
    with pytest.raises(ValidationError):
        LayerNorm(type="layernorm", epsilon=-1e-5)


def test_batchnorm_on_a_rank_5_input_is_a_shape_error():
    with pytest.raises(ShapeError, match=r"got \(1, 2, 3, 4, 5\)"):
        BatchNorm(type="batchnorm").output_shape([(1, 2, 3, 4, 5)])
