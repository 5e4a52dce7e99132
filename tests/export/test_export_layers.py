"""Every registered layer type exports: a one-layer model from the type's example (as `layerforge layers`
shows it) goes to pt2 and ONNX, and both files compute what the PyTorch module computes (within 1e-5)
on a batch size other than the one traced. Types listed in NOT_EXPORTABLE are refused with an error that
names the layer and the format, and the test checks the exporter really fails on them (the list stays true)."""
from __future__ import annotations

import io

import pytest
import torch
import yaml

from layerforge.build import build
from layerforge.errors import ExportError
from layerforge.export import NOT_EXPORTABLE
from layerforge.export import onnx_format
from layerforge.export.program import example_inputs, export_program, trace
from layerforge.layers.registry import registry

TYPES = sorted(registry())


def example_model(name: str):
    """A model holding one layer: the type's YAML example, reading inputs shaped as its example_inputs."""
    cls = registry()[name]
    (item,) = yaml.safe_load(cls.example)
    shapes = [list(s) for s in cls.example_inputs]
    names = item.get("inputs") or ["input"]
    input_shape = dict(zip(names, shapes)) if item.get("inputs") else shapes[0]
    spec, graph, model = build({"model": {"input_shape": input_shape, "layers": [item]}}, seed=0)
    return graph, model.eval()


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
    graph, model = example_model(name)
    trace_inputs = example_inputs(graph, 2)
    check = example_inputs(graph, 5, seed=3)  # another batch size: the batch axis is dynamic
    with torch.no_grad():
        want = model(*check)
    refused = NOT_EXPORTABLE.get(name, {})
    for fmt in refused:
        with pytest.raises(ExportError, match=rf"layer '{graph.nodes[0].name}' \(type {name}\) cannot be exported to {fmt}"):
            export_program(model, model, graph, trace_inputs, fmt, True)
        with pytest.raises((RuntimeError, torch.onnx.OnnxExporterError)):  # the list is true: it really fails
            program = trace(model, trace_inputs, True)
            if fmt == "onnx":
                onnx_format.convert(program, model, graph, None, list(graph.inputs), list(graph.outputs), True)
    if refused.keys() >= {"pt2", "onnx"}:
        return
    program = export_program(model, model, graph, trace_inputs, "pt2", True)  # one trace serves both formats
    if "pt2" not in refused:
        buf = io.BytesIO()
        torch.export.save(program, buf)
        buf.seek(0)
        _assert_close(torch.export.load(buf).module()(*check), want, f"{name} pt2")
    if "onnx" not in refused:
        onx = onnx_format.convert(program, model, graph, None, list(graph.inputs), list(graph.outputs), True)
        path = tmp_path / "m.onnx"
        onnx_format.save(onx, path, {"layer": name})
        onnx_format.check(path)
        got = onnx_format.run(onnx_format.session(path), check)
        _assert_close([torch.from_numpy(g) for g in got], want, f"{name} onnx")
