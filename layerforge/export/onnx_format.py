"""ONNX: convert a ``torch.export`` program with the dynamo exporter, check it with ``onnx.checker``, run it
in onnxruntime.

Two things the exporter does not do by itself: 3-D ``scaled_dot_product_attention`` (the single-head
attention layers call it on (B, T, D) tensors; torchlib translates only 4-D ones, so a head axis is added
around it), and a readable batch dimension (the program's symbol ``s0`` becomes ``batch``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ExportError
from ..extras import require
from .program import blame, layer_error, layer_of_node, quiet_exporters

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn
    from torch.export import ExportedProgram

    from ..graph import Graph

PURPOSE = "export to ONNX"
EXTERNAL_DATA_BYTES = 1_800_000_000  # a protobuf holds at most 2 GB: larger weights go to model.onnx.data


def require_onnx() -> None:
    """The three packages of the ``export`` extra, or a clear message naming it; and a torch whose ONNX
    exporter takes an ExportedProgram and a custom translation table (2.6 or later)."""
    import torch

    for module in ("onnxscript", "onnx", "onnxruntime"):
        require(module, "export", PURPOSE)
    if tuple(int(p) for p in torch.__version__.split(".")[:2]) < (2, 6):
        raise ExportError(f"export to ONNX needs torch 2.6 or later (the dynamo exporter); this is torch {torch.__version__}",
                          hint="pip install 'torch>=2.6', or export with --format pt2")


def _sdpa_any_rank(query: Any, key: Any, value: Any, attn_mask: Any = None, dropout_p: float = 0.0,
                   is_causal: bool = False, scale: Any = None, enable_gqa: bool = False) -> Any:
    """``aten.scaled_dot_product_attention`` for 3-D (B, T, D) inputs too: (B, 1, T, D) through torchlib's
    4-D translation, then the head axis removed."""
    import onnx_ir as ir
    from onnxscript import opset18 as op
    from onnxscript.function_libs.torch_lib.ops.nn import aten_scaled_dot_product_attention as sdpa4

    if len(query.shape) == 4:
        return sdpa4(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
    axis = op.Constant(value_ints=[1])

    def heads(t: Any) -> Any:  # (B, T, D) → (B, 1, T, D), with the shape torchlib's translation reads
        u = op.Unsqueeze(t, axis)
        u.shape, u.type = ir.Shape([t.shape[0], 1, *t.shape[1:]]), t.type
        return u

    if attn_mask is not None and len(attn_mask.shape) == 3:
        attn_mask = heads(attn_mask)
    y = sdpa4(heads(query), heads(key), heads(value), attn_mask, dropout_p, is_causal, scale, enable_gqa)
    return op.Squeeze(y, axis)  # (B, T, Dv)


def _translations() -> dict:
    import torch

    return {torch.ops.aten.scaled_dot_product_attention.default: _sdpa_any_rank}


def convert(program: "ExportedProgram", model: "nn.Module", graph: "Graph", opset: int | None,
            input_names: list[str], output_names: list[str], dynamic_batch: bool) -> Any:
    """The ``torch.onnx.ONNXProgram`` of ``program``; a conversion failure names the layer behind it."""
    import torch

    require_onnx()
    try:
        with quiet_exporters():
            onnx_program = torch.onnx.export(program, dynamo=True, opset_version=opset, input_names=input_names,
                                             output_names=output_names, custom_translation_table=_translations(),
                                             verbose=False)
    except torch.onnx.OnnxExporterError as e:
        name = layer_of_node(program, graph, e)
        if name is not None:
            raise layer_error(name, graph.node(name).layer.type, "onnx", e, dynamic_batch) from e

        def attempt(m: "nn.Module", xs: tuple) -> None:
            from .program import trace

            torch.onnx.export(trace(m, xs, dynamic_batch), dynamo=True, opset_version=opset,
                              custom_translation_table=_translations(), verbose=False)

        raise blame(model, graph, "onnx", e, dynamic_batch, attempt, (torch.onnx.OnnxExporterError, RuntimeError)) from e
    if dynamic_batch:
        _name_batch_dim(onnx_program.model)
    return onnx_program


def _name_batch_dim(model: Any) -> None:
    """Rename the batch symbol (``s0``, ``s77``...) to ``batch`` on every value that carries it."""
    import onnx_ir as ir

    first = model.graph.inputs[0].shape
    symbol = first[0].value if first is not None and isinstance(first[0], ir.SymbolicDim) else None
    if symbol is None:
        return
    values = list(model.graph.inputs) + list(model.graph.outputs)
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        values.extend(node.outputs)
    for v in values:
        if v.shape is not None and any(isinstance(d, ir.SymbolicDim) and d.value == symbol for d in v.shape):
            v.shape = ir.Shape(["batch" if isinstance(d, ir.SymbolicDim) and d.value == symbol else d for d in v.shape])


def save(onnx_program: Any, path: Path, metadata: dict[str, Any]) -> list[Path]:
    """Write ``path`` (and ``path.data`` when the weights pass ~1.8 GB, the protobuf limit being 2 GB) with
    ``metadata`` in the model's ``metadata_props`` (each value JSON, the spec YAML). Returns the files."""
    for key, value in metadata.items():
        onnx_program.model.metadata_props[key] = value if isinstance(value, str) else json.dumps(value)
    external = needs_external_data(onnx_program)
    onnx_program.save(str(path), external_data=external)
    return [path, path.with_name(path.name + ".data")] if external else [path]


def needs_external_data(onnx_program: Any) -> bool:
    """Whether the weights are too large for one protobuf file."""
    return sum(int(v.const_value.nbytes) for v in onnx_program.model.graph.initializers.values()
               if v.const_value is not None) > EXTERNAL_DATA_BYTES


def check(path: Path) -> int:
    """``onnx.checker`` (full check, shapes inferred); returns the model's default-domain opset."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportError(f"the exported file {path} is not a valid ONNX model: {str(e).splitlines()[0]}",
                          hint="this is a layerforge or exporter bug; please report it with the run's spec.yaml") from None
    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def session(path: Path) -> Any:
    """An onnxruntime session on the CPU (the reference runtime the check compares torch with)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except (ort.capi.onnxruntime_pybind11_state.Fail, ort.capi.onnxruntime_pybind11_state.InvalidGraph,
            ort.capi.onnxruntime_pybind11_state.NotImplemented) as e:
        raise ExportError(f"onnxruntime cannot load the exported model {path}: {str(e).splitlines()[0]}",
                          hint="try another --opset, or --format pt2") from None


def run(sess: Any, inputs: tuple["torch.Tensor", ...]) -> list["np.ndarray"]:
    """The session's outputs for one batch (inputs in the model's order)."""
    feeds = {i.name: x.detach().cpu().numpy() for i, x in zip(sess.get_inputs(), inputs)}
    return sess.run(None, feeds)
