"""From a built model to a ``torch.export`` program, and from an exporter's failure to the layer behind it.

Every format starts here: ``onnx`` converts the program, ``pt2`` saves it, ``safetensors`` only checks
nothing is in the way. The batch axis is a named dynamic dimension (``batch``) unless a static batch is
asked for; a model that fixes the batch size anyway is reported with the layer that does it.

A failure is caught as the exporter raises it (``torch.export`` raises RuntimeError subclasses, the ONNX
exporter ``torch.onnx.OnnxExporterError``), then blamed on a layer: the ONNX error names the graph node,
whose ``nn_module_stack`` names the layer; for a ``torch.export`` failure each layer is exported alone
until one fails. :data:`NOT_EXPORTABLE` lists the layer types known not to export, refused at once.
"""
from __future__ import annotations

import contextlib
import logging
import re
import warnings
from functools import cache
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..errors import ExportError

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.export import ExportedProgram

    from ..graph import Graph

FORMATS = ("onnx", "pt2", "safetensors")

# Layer types that cannot be exported, per format, with the reason (shown in the error and in
# docs/export.md). The test over the registry asserts that each entry really fails and gets the clear error.
NOT_EXPORTABLE: dict[str, dict[str, str]] = {
    "quantum_circuit": {"onnx": "its simulated state is complex-valued, and the ONNX exporter has no complex "
                                "tensors (pt2 and safetensors export it)"},
}

# Settings of a type that cannot be exported to a format: type → format → (test on the layer, reason).
NOT_EXPORTABLE_WHEN: dict[str, dict[str, tuple[Callable[[Any], bool], str]]] = {
    "spike_encode": {"onnx": (lambda layer: layer.mode == "rate",
                              "rate encoding draws random spikes at inference, which ONNX Runtime draws from its "
                              "own generator, so the file cannot be checked against torch (pt2 and safetensors "
                              "draw from torch's; mode: latency or direct exports to onnx)")},
}

# Loggers the exporters write progress and harmless notes to (torchvision ops missing, guards added).
_NOISY = ("torch.onnx", "torch.export", "torch._export", "torch._dynamo", "torch.fx.experimental.symbolic_shapes",
          "onnxscript", "torch._subclasses")


@contextlib.contextmanager
def quiet_exporters() -> Iterator[None]:
    """The exporters log their progress and notes at WARNING; keep them off the user's terminal (the library
    never prints). Errors still raise."""
    saved = {name: logging.getLogger(name).level for name in _NOISY}
    try:
        for name in _NOISY:
            logging.getLogger(name).setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def example_inputs(graph: "Graph", batch: int, seed: int = 0) -> tuple["torch.Tensor", ...]:
    """One random batch for the model's inputs: integer ids inside each id-reading layer's range, floats
    elsewhere (what ``torch.export`` traces with; values do not matter)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    ids = graph.integer_inputs()
    out = []
    for name, shape in graph.inputs.items():
        if name in ids:
            lo, hi = ids[name]
            out.append(torch.randint(lo, hi, (batch, *shape), generator=gen))
        else:
            out.append(torch.randn(batch, *shape, generator=gen))
    return tuple(out)


def refuse_known(graph: "Graph", fmt: str) -> None:
    """Refuse at once a model holding a layer listed in :data:`NOT_EXPORTABLE` (or, with its settings, in
    :data:`NOT_EXPORTABLE_WHEN`) for ``fmt``."""
    for node in graph.nodes:
        reason = NOT_EXPORTABLE.get(node.layer.type, {}).get(fmt)
        when = NOT_EXPORTABLE_WHEN.get(node.layer.type, {}).get(fmt)
        if reason is None and when is not None and when[0](node.layer):
            reason = when[1]
        if reason:
            raise ExportError(f"layer '{node.name}' (type {node.layer.type}) cannot be exported to {fmt}: {reason}",
                              hint=_hint(fmt))


def _hint(fmt: str) -> str:
    others = [f for f in FORMATS if f != fmt]
    return (f"try --format {' or --format '.join(others)}; docs/export.md lists what each format supports "
            "(lf.load_model gives the trained nn.Module for plain PyTorch)")


def _dynamic_shapes(n_inputs: int, dynamic_batch: bool) -> Any:
    """The forward takes ``*inputs``: one spec per input, all sharing the batch dimension."""
    if not dynamic_batch:
        return None
    import torch

    batch = torch.export.Dim("batch")
    return (tuple({0: batch} for _ in range(n_inputs)),)


def trace(module: "nn.Module", inputs: tuple["torch.Tensor", ...], dynamic_batch: bool) -> "ExportedProgram":
    """``torch.export.export`` of ``module(*inputs)`` (eval mode), batch axis dynamic or fixed."""
    import torch

    module.eval()
    with quiet_exporters():
        return torch.export.export(module, inputs, dynamic_shapes=_dynamic_shapes(len(inputs), dynamic_batch))


def export_program(module: "nn.Module", model: "nn.Module", graph: "Graph", inputs: tuple["torch.Tensor", ...],
                   fmt: str, dynamic_batch: bool) -> "ExportedProgram":
    """Trace ``module`` (the model, or the model behind its transform) for ``fmt``. A failure becomes an
    :class:`ExportError` naming the layer of ``model`` (the built graph module) that causes it."""
    refuse_known(graph, fmt)
    try:
        return trace(module, inputs, dynamic_batch)
    except RuntimeError as e:  # torch.export's errors (UserError, Unsupported, data-dependent guards) are RuntimeErrors
        raise blame(model, graph, fmt, e, dynamic_batch,
                    lambda m, xs: trace(m, xs, dynamic_batch), RuntimeError) from e


def reason_of(error: BaseException) -> str:
    """The innermost cause's first line: what the exporter could not do."""
    inner = error
    while inner.__cause__ is not None:
        inner = inner.__cause__
    text = str(inner).strip().splitlines()
    line = text[0] if text else type(inner).__name__
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)  # the exporters colour some words
    return (line[:300] + "…") if len(line) > 300 else line


def blame(model: "nn.Module", graph: "Graph", fmt: str, error: BaseException, dynamic_batch: bool,
          attempt: Callable[["nn.Module", tuple], Any], caught: type[BaseException] | tuple) -> ExportError:
    """The ExportError for ``error``: each layer is tried alone with ``attempt`` (in graph order, on random
    inputs of its input shapes) and the first that fails is named."""
    import torch

    reason = reason_of(error)
    for node in graph.nodes:
        layer = model.layers[node.name]
        ids = [node.layer.id_range(i) for i in range(len(node.in_shapes))]
        rows = 2 * node.steps  # a spiking layer's input carries its time steps folded into the batch
        xs = tuple(torch.randint(r[0], r[1], (rows, *s)) if r else torch.randn(rows, *s) for r, s in zip(ids, node.in_shapes))
        try:
            with quiet_exporters():
                attempt(_alone_class()(layer).eval(), xs)
        except caught as e:
            return layer_error(node.name, node.layer.type, fmt, e, dynamic_batch)
    if dynamic_batch and _fixes_batch(error):
        return ExportError(f"the model cannot be exported to {fmt} with a dynamic batch size: {reason}",
                           hint="export with --static-batch (and --batch-size N)")
    return ExportError(f"the model cannot be exported to {fmt}: {reason}", hint=_hint(fmt))


def layer_error(name: str, type_name: str, fmt: str, error: BaseException, dynamic_batch: bool) -> ExportError:
    reason = reason_of(error)
    if dynamic_batch and _fixes_batch(error):
        return ExportError(f"layer '{name}' (type {type_name}) fixes the batch size, so it cannot be exported to "
                           f"{fmt} with a dynamic batch", hint="export with --static-batch (and --batch-size N)")
    return ExportError(f"layer '{name}' (type {type_name}) cannot be exported to {fmt}: {reason}", hint=_hint(fmt))


def layer_of_node(program: "ExportedProgram", graph: "Graph", error: BaseException) -> str | None:
    """The layer a failing FX node belongs to: the ONNX exporter's error names the node (``node %name``); its
    ``nn_module_stack`` holds module paths from the outermost (``model.layers.conv1``, ``L['self'].layers['conv1']``)."""
    names = {n.name for n in graph.nodes}
    err: BaseException | None = error
    while err is not None:
        m = re.search(r"node %([\w.]+)", str(err))
        node = next((n for n in program.graph.nodes if n.name == m.group(1)), None) if m else None
        if node is not None:
            for path, _ in (node.meta.get("nn_module_stack") or {}).values():
                hit = re.search(r"layers(?:\.|\[')(\w+)", str(path))
                if hit and hit.group(1) in names:
                    return hit.group(1)
        err = err.__cause__
    return None


def _fixes_batch(error: BaseException) -> bool:
    """torch.export's refusal of the dynamic ``batch`` dimension (the model specialised it)."""
    return "Constraints violated (batch)" in str(error)


@cache
def _alone_class() -> type:
    """A wrapper to export one layer module alone (the cached-factory idiom keeps torch out of the import)."""
    from torch import nn

    class Alone(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *xs: Any) -> Any:
            return self.inner(*xs)

    return Alone
