"""Every registered layer type exports: a one-layer model from the type's example (as `layerforge layers`
shows it) goes to pt2 and ONNX, and both files compute what the PyTorch module computes (within 1e-5)
on a batch size other than the one traced (spiking models: on other values of the traced batch size, since
they export with a static batch only). Types listed in NOT_EXPORTABLE (or NOT_EXPORTABLE_WHEN, with their
example's settings) are refused with an error that names the layer and the format, and the test checks the
exporter really fails on them (the list stays true)."""
from __future__ import annotations

import io

import pytest
import torch
import yaml

from layerforge.build import build
from layerforge.errors import ExportError
from layerforge.export import NOT_EXPORTABLE
from layerforge.export import onnx_format
from layerforge.export.program import NOT_EXPORTABLE_WHEN, example_inputs, export_program, trace
from layerforge.layers.registry import registry

TYPES = sorted(registry())


def example_model(name: str):
    """A model around one layer: the type's YAML example, reading inputs shaped as its example_inputs (a
    layer reading time steps gets them from a `spike_encode` in direct mode before it, one giving time
    steps out is read out by a `spike_readout` after it). Returns the graph, the model and the layer's name."""
    cls = registry()[name]
    (item,) = yaml.safe_load(cls.example)
    shapes = [list(s) for s in cls.example_inputs]
    names = item.get("inputs") or ["input"]
    input_shape = dict(zip(names, shapes)) if item.get("inputs") else shapes[0]
    steps = cls.example_steps
    before = [{"type": "spike_encode", "mode": "direct", "steps": steps}] if steps > 1 else []
    after = [{"type": "spike_readout"}] if cls.model_validate(item).out_steps(steps) > 1 else []
    spec, graph, model = build({"model": {"input_shape": input_shape, "layers": [*before, item, *after]}}, seed=0)
    return graph, model.eval(), graph.nodes[len(before)].name


def refusals(name: str, graph, layer_name: str) -> dict[str, str]:
    layer = next(n.layer for n in graph.nodes if n.name == layer_name)
    when = {fmt: why for fmt, (test, why) in NOT_EXPORTABLE_WHEN.get(name, {}).items() if test(layer)}
    return {**NOT_EXPORTABLE.get(name, {}), **when}


def seeded(fn, *xs):
    """Layers drawing random numbers at inference (rate-encoded spikes) draw the same in torch and pt2."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return fn(*xs)


def _outputs(y):
    return [t.detach() for t in (y if isinstance(y, (tuple, list)) else (y,))]


def _assert_close(got, want, what):
    for g, w in zip(_outputs(got), _outputs(want)):
        g = torch.as_tensor(g)
        assert g.shape == w.shape, what
        diff = (g.double() - w.double()).abs().max().item()
        assert diff <= 1e-5, f"{what}: max |diff| {diff:.3g}"


@pytest.mark.slow  # ~1.5 min for the 26 built-in types on 2 busy cores; the recurrent ones are unrolled
@pytest.mark.parametrize("name", TYPES)
def test_every_layer_type_exports_to_pt2_and_onnx_and_matches_torch(name, tmp_path):
    graph, model, layer = example_model(name)
    dynamic = all(node.steps == 1 and node.out_steps == 1 for node in graph.nodes)
    trace_inputs = example_inputs(graph, 2)
    check = example_inputs(graph, 5 if dynamic else 2, seed=3)
    with torch.no_grad():
        want = seeded(model, *check)
    refused = refusals(name, graph, layer)
    for fmt, why in refused.items():
        with pytest.raises(ExportError, match=rf"layer '{layer}' \(type {name}\) cannot be exported to {fmt}"):
            export_program(model, model, graph, trace_inputs, fmt, dynamic)
        if name in NOT_EXPORTABLE_WHEN:
            continue  # refused because the file could not be checked, not because the exporter fails
        with pytest.raises((RuntimeError, ExportError)):  # the list is true: it really fails
            program = trace(model, trace_inputs, dynamic)
            if fmt == "onnx":  # convert does not consult the lists: its ExportError is the exporter's failure
                onnx_format.convert(program, model, graph, None, list(graph.inputs), list(graph.outputs), dynamic)
    if refused.keys() >= {"pt2", "onnx"}:
        return
    program = export_program(model, model, graph, trace_inputs, "pt2", dynamic)  # one trace serves both formats
    if "pt2" not in refused:
        buf = io.BytesIO()
        torch.export.save(program, buf)
        buf.seek(0)
        _assert_close(seeded(torch.export.load(buf).module(), *check), want, f"{name} pt2")
    if "onnx" not in refused:
        onx = onnx_format.convert(program, model, graph, None, list(graph.inputs), list(graph.outputs), dynamic)
        path = tmp_path / "m.onnx"
        onnx_format.save(onx, path, {"layer": name})
        onnx_format.check(path)
        got = onnx_format.run(onnx_format.session(path), check)
        _assert_close([torch.from_numpy(g) for g in got], want, f"{name} onnx")


def test_a_spiking_model_refuses_a_dynamic_batch_naming_the_layer_and_static_batch():
    graph, model, _ = example_model("lif")
    with pytest.raises(ExportError, match=r"layer 'lif_1' \(type lif\) fixes the batch size") as caught:
        export_program(model, model, graph, example_inputs(graph, 2), "pt2", True)
    assert "--static-batch" in caught.value.hint
