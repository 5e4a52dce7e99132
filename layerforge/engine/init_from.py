"""``model.init_from``: start a new run from a trained run's weights (transfer learning, fine-tuning).

Each layer of the new model that has weights takes the tensors of the source run's layer with the same
name, or of the one ``init_from.layers`` maps it to (``{new_name: old_name}``). A layer is loaded whole or
not at all: when any of its tensors is missing in the source or has another shape, it keeps its fresh
weights and the report says why. ``strict: true`` makes every layer with weights load, or fails.
Buffers (batchnorm's running statistics) travel with their layer, as Keras' moving statistics do.

The checkpoint is verified (its manifest) before anything is read. Only a new run applies it: a resumed
run continues from its own checkpoint (see :func:`layerforge.engine.api.train`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import CheckpointError, Issue, SpecError

if TYPE_CHECKING:
    from torch import nn

    from ..graph import Graph
    from ..spec.schema import Spec

REPORT = "init_from.json"  # written into the new run directory


@dataclass
class InitReport:
    """What init_from did: per layer of the new model, loaded / absent in the source / shape-mismatched."""

    run: str
    checkpoint: str
    loaded: list[dict[str, Any]] = field(default_factory=list)  # {layer, source, tensors, numbers}
    absent: list[str] = field(default_factory=list)  # layers with weights the source does not have
    mismatched: list[dict[str, Any]] = field(default_factory=list)  # {layer, source, tensor, shape, source_shape}
    unused: list[str] = field(default_factory=list)  # source layers with weights nothing loaded from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """One line for the train output."""
        numbers = sum(r["numbers"] for r in self.loaded)
        parts = [f"init_from {self.run} ({self.checkpoint}): loaded {len(self.loaded)} layer(s), {numbers:,} numbers"]
        if self.absent:
            parts.append(f"not in the source: {', '.join(self.absent)}")
        if self.mismatched:
            parts.append("not loaded, they differ: " + ", ".join(mismatch_text(m) for m in self.mismatched))
        return "; ".join(parts)


def mismatch_text(m: dict[str, Any]) -> str:
    """One mismatched layer: its tensor's shape here and in the source, or the tensors only one side has."""
    if m["shape"] is None or m["source_shape"] is None:
        return f"{m['layer']} (tensors only one side has: {m['tensor']})"
    return f"{m['layer']}.{m['tensor']} {tuple(m['shape'])} here, {tuple(m['source_shape'])} in '{m['source']}'"


def _by_layer(keys: list[str], layers: list[str]) -> dict[str, dict[str, str]]:
    """State-dict keys grouped by layer: {layer: {tensor name inside the layer: full key}} (longest name
    first, so a block layer 'enc.0.attn' is not taken for a layer 'enc')."""
    out: dict[str, dict[str, str]] = {}
    ordered = sorted(layers, key=len, reverse=True)
    for k in keys:
        for name in ordered:
            prefix = f"layers.{name}."
            if k.startswith(prefix):
                out.setdefault(name, {})[k[len(prefix):]] = k
                break
    return out


def _locator(spec: "Spec") -> Callable[..., Issue]:
    """Issues at ``model.init_from.<path>`` in the spec's file."""
    marks = spec.marks
    if marks is not None:
        return lambda path, msg, hint: marks.locate(("model", "init_from", *path), msg, hint)
    return lambda path, msg, hint: Issue(msg, ("model", "init_from", *path), hint, spec.source)


def _source(spec: "Spec", layers: list[str]) -> tuple[str, Path, list[str]]:
    """The source run's chosen checkpoint (best or last, and its directory) and its layer names, after checking the run (it opens, its spec
    loads, it has a checkpoint) and the renames (each names a layer of ``layers`` and of the source)."""
    from . import checkpoint as ckpt
    from .rundir import RunDir

    init, at = spec.model.init_from, _locator(spec)
    try:
        run = RunDir.open(init.run)
        _, src_graph = run.load_spec(train_rules=False)
    except CheckpointError as e:
        raise SpecError([at(("run",), f"init_from: {e.message}", e.hint)]) from None
    except SpecError as e:
        raise SpecError([at(("run",), f"init_from: the run's spec.yaml does not load ({e.issues[0].message})",
                            "give a run trained by this version of layerforge")]) from None
    which = init.checkpoint
    if which == "best" and not ckpt.exists(run.best):
        which = "last"
    if not ckpt.exists(getattr(run, which)):
        raise SpecError([at(("run",), f"init_from: {init.run} has no checkpoint ({which}) yet",
                            "give a run that finished at least one epoch")])
    src_layers = [n.name for n in src_graph.nodes]
    unknown = [at(("layers", new), f"init_from.layers: '{new}' is not a layer of this model", "use a layer name of "
                  "this spec (the key is the new name, the value the source run's)") for new in init.layers
               if new not in layers]
    unknown += [at(("layers", new), f"init_from.layers: '{old}' is not a layer of the source run ({init.run})",
                   f"its layers: {', '.join(src_layers)}") for new, old in init.layers.items() if old not in src_layers]
    if unknown:
        raise SpecError(unknown)
    return which, ckpt.resolve(getattr(run, which)), src_layers


def check_init_from(spec: "Spec", graph: "Graph") -> None:
    """What ``validate`` checks of ``model.init_from`` without loading weights: the run, its checkpoint, the
    renames (a located SpecError otherwise)."""
    if spec.model.init_from is not None:
        _source(spec, [n.name for n in graph.nodes])


def apply_init_from(spec: "Spec", model: "nn.Module") -> InitReport | None:
    """Load ``spec.model.init_from`` into ``model`` (its freshly built module); None without init_from.
    Problems with the spec's key (a missing run, a rename naming an unknown layer, a strict miss) are
    located :class:`SpecError`\\ s; a damaged checkpoint is a :class:`CheckpointError`."""
    init = spec.model.init_from
    if init is None:
        return None
    import torch
    from safetensors.torch import load_file

    from . import checkpoint as ckpt

    at = _locator(spec)
    new_layers = list(model.layers)
    which, path, src_layers = _source(spec, new_layers)
    ckpt.verify(path)
    source = load_file(str(path / ckpt.WEIGHTS))

    state = model.state_dict()
    mine, theirs = _by_layer(list(state), new_layers), _by_layer(list(source), src_layers)
    report = InitReport(str(init.run), which)
    used: set[str] = set()
    with torch.no_grad():
        for layer, tensors in mine.items():
            src = init.layers.get(layer, layer if layer in theirs else None)
            got = theirs.get(src or "", {})
            if src is None or not got:
                report.absent.append(layer)
                continue
            used.add(src)
            if set(got) != set(tensors):  # e.g. use_bias differs
                report.mismatched.append({"layer": layer, "source": src, "tensor": ", ".join(sorted(set(got) ^ set(tensors))),
                                          "shape": None, "source_shape": None})
                continue
            bad = [{"layer": layer, "source": src, "tensor": t, "shape": list(state[k].shape),
                    "source_shape": list(source[got[t]].shape)}
                   for t, k in tensors.items() if source[got[t]].shape != state[k].shape]
            if bad:
                report.mismatched.extend(bad)
                continue
            for t, k in tensors.items():
                state[k].copy_(source[got[t]])
            report.loaded.append({"layer": layer, "source": src, "tensors": len(tensors),
                                  "numbers": sum(state[k].numel() for k in tensors.values())})
    report.unused = [n for n in theirs if n not in used]
    if init.strict and (report.absent or report.mismatched):
        issues = [at(("run",), f"init_from (strict): layer '{n}' has weights and the source run has no layer of that "
                     "name", f"map it with init_from.layers: {{{n}: <source layer>}}, or set strict: false to keep "
                     "its fresh weights") for n in report.absent]
        issues += [at(("run",), f"init_from (strict): layer '{m['layer']}' does not fit '{m['source']}' of the source "
                      f"run: {mismatch_text(m)}", "make the layer's sizes equal the source's, or set strict: false")
                   for m in report.mismatched]
        raise SpecError(issues)
    return report


def write_report(run_path: Path, report: InitReport) -> None:
    import json

    from .checkpoint import atomic_write_text

    atomic_write_text(run_path / REPORT, json.dumps(report.to_dict(), indent=2) + "\n")
