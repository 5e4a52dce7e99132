"""One contract test for every registered layer type (a new type is tested without a new test):
the inferred output shape equals the built module's, backward runs, the meta-device parameter count
equals the real one, FLOPs are counted, and the doc page has its sections.

Time steps (spiking layers): the example's input carries ``example_steps`` = T steps folded into the
batch, so it is fed a batch of 3·T rows and must return 3·T_out rows, T_out = ``out_steps(T)``;
``time_aware`` types are built (and their FLOPs counted) for that T."""
from __future__ import annotations

import pytest
import torch
import yaml

from layerforge.layers.registry import registry

TYPES = sorted(registry())


def _example(cls):
    (item,) = yaml.safe_load(cls.example)
    return cls.model_validate(item)


def _build(cls, layer, shapes):
    return layer.build(shapes, steps=cls.example_steps) if cls.time_aware else layer.build(shapes)


@pytest.mark.parametrize("name", TYPES)
def test_every_type_has_docs_and_an_example(name):
    cls = registry()[name]
    doc = cls.doc()
    assert cls.summary and cls.example and cls.example_inputs, f"{name}: summary, example and example_inputs are required"
    for section in ("**Formula.**", "**Shapes.**", "**FLOPs**", "**Equivalents.**"):
        assert section in doc, f"{name}: doc lacks {section}"
    assert "**Parameters.**" not in doc, f"{name}: parameters are documented by their Field descriptions only"
    for fname, f in cls.model_fields.items():
        if fname not in ("type", "name", "inputs"):
            assert f.description, f"{name}.{fname} has no description"


@pytest.mark.parametrize("name", TYPES)
def test_built_module_matches_inferred_shape_and_backward_runs(name):
    cls = registry()[name]
    layer = _example(cls)
    shapes = [tuple(s) for s in cls.example_inputs]
    out_shape = layer.output_shape(shapes)
    steps = cls.example_steps
    torch.manual_seed(0)
    module = _build(cls, layer, shapes)
    module.train()
    xs = []
    for i, s in enumerate(shapes):
        ids = layer.id_range(i)
        if ids is not None:
            assert ids[0] < ids[1], f"{name}: id_range({i}) is empty"
            xs.append(torch.randint(ids[0], ids[1], (3 * steps, *s)))
        else:
            xs.append(torch.randn(3 * steps, *s, requires_grad=True))
    y = module(*xs)
    if layer.extra_outputs(shapes):
        y, *extra = y
        assert [tuple(t.shape) for t in extra] == [(3, *s) for s in layer.extra_outputs(shapes).values()]
    assert tuple(y.shape) == (3 * layer.out_steps(steps), *out_shape)
    y.float().square().mean().backward()
    params = list(module.parameters())
    if params:
        assert any(p.grad is not None for p in params)


@pytest.mark.parametrize("name", [n for n in TYPES if "return_state" in registry()[n].model_fields])
def test_extra_outputs_follow_the_main_output_with_the_declared_shapes(name):
    cls = registry()[name]
    layer = _example(cls).model_copy(update={"return_state": True})
    shapes = [tuple(s) for s in cls.example_inputs]
    y, *extra = _build(cls, layer, shapes).eval()(*[torch.randn(3, *s) for s in shapes])
    assert tuple(y.shape) == (3, *layer.output_shape(shapes))
    assert [tuple(t.shape) for t in extra] == [(3, *s) for s in layer.extra_outputs(shapes).values()] != []


@pytest.mark.parametrize("name", TYPES)
def test_meta_build_has_the_same_parameters(name):
    cls = registry()[name]
    layer = _example(cls)
    shapes = [tuple(s) for s in cls.example_inputs]
    real = _build(cls, layer, shapes)
    with torch.device("meta"):
        meta = _build(cls, layer, shapes)
    assert [(n, p.shape) for n, p in real.named_parameters()] == [(n, p.shape) for n, p in meta.named_parameters()]


@pytest.mark.parametrize("name", TYPES)
def test_flops_are_counted_and_positive(name):
    cls = registry()[name]
    layer = _example(cls)
    shapes = [tuple(s) for s in cls.example_inputs]
    out = layer.output_shape(shapes)
    f = layer.flops(shapes, out, steps=cls.example_steps) if cls.time_aware else layer.flops(shapes, out)
    assert f is not None and f >= 0
