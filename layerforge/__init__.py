"""layerforge: try a neural-network architecture from a YAML spec.

Python API (importing this package does not import torch; the functions do when called)::

    import layerforge as lf
    spec, graph = lf.load_spec("configs/cnn_digits.yaml", overrides=["model.layers.0.filters=16"])
    model = lf.build_model(spec)          # an ordinary torch.nn.Module
    rows = lf.summarize(spec, batch_size=32)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import CheckpointError, DataError, LayerforgeError, SpecError, TrainingError

# Loaded on first use (PEP 562), so `import layerforge` and `layerforge --help` stay light.
_LAZY = {
    "LayerSpec": "layerforge.layers.registry", "register": "layerforge.layers.registry",
    "registry": "layerforge.layers.registry", "Spec": "layerforge.spec.schema",
    "spec_from_dict": "layerforge.spec.validate", "spike_report": "layerforge.analysis.spiking",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'layerforge' has no attribute {name!r}")

__version__ = "0.1.0"

if TYPE_CHECKING:
    from torch import nn


def _as_spec(spec: Any, overrides: list[str] | None = None):
    """Accept a path, a dict, a Spec, or a (Spec, Graph) pair; return (Spec, Graph)."""
    from pathlib import Path

    from .graph import plan
    from .spec.loader import Marks
    from .spec.schema import Spec
    from .spec.validate import load_spec, spec_from_dict

    if isinstance(spec, tuple) and len(spec) == 2:
        return spec
    if isinstance(spec, (str, Path)):
        return load_spec(spec, overrides)
    if isinstance(spec, dict):
        return spec_from_dict(spec, overrides)
    if isinstance(spec, Spec):
        marks = Marks(file=spec.source or "<spec>")
        graph, errs = plan(spec.model.input_shapes(), spec.model.layers, spec.model.output_names(),
                           lambda p, m, h, l: marks.locate(p, m, h, l))
        if errs:
            raise SpecError(errs)
        return spec, graph
    raise TypeError(f"expected a path, dict or Spec, got {type(spec).__name__}")


def validate(spec: Any, overrides: list[str] | None = None):
    """Validate schema, references and shapes without allocating weights. Returns (Spec, Graph)."""
    return _as_spec(spec, overrides)


def load_spec(path: Any, overrides: list[str] | None = None, plugins: list[str] | None = None):
    """Load, override, validate and shape-check a spec file; returns (Spec, Graph). Raises SpecError."""
    from .spec.validate import load_spec as _load

    return _load(path, overrides, plugins)


def build_model(spec: Any, overrides: list[str] | None = None, seed: int | None = None) -> "nn.Module":
    """Build the spec's model as a ``torch.nn.Module`` (weights initialised from ``seed`` or the spec's seed)."""
    import torch

    from .graph import build_module

    s, graph = _as_spec(spec, overrides)
    torch.manual_seed(s.seed if seed is None else seed)
    return build_module(graph)


def summarize(spec: Any, batch_size: int = 1, overrides: list[str] | None = None):
    """Per-layer summary (output shape, parameters, FLOPs) and totals; see layerforge.analysis.summary."""
    from .analysis.summary import summarize as _summarize

    s, graph = _as_spec(spec, overrides)
    return _summarize(s, graph, batch_size)


def train(spec: Any = None, *, data: Any = None, overrides: list[str] | None = None, out: Any = None,
          resume: Any = None, callbacks: Any = (), plugins: list[str] | None = None, save: bool = True):
    """Train a spec's model; returns a :class:`~layerforge.engine.events.TrainResult`.

    ``spec``: a YAML path, a dict or a Spec (its ``data:`` section is loaded unless ``data`` is a
    DataBundle). ``out``: the run directory (default ``<train.out>/<name>/<timestamp>``); ``save=False``
    writes nothing. ``resume``: a run directory to continue exactly where it stopped (``spec`` must be
    None; ``overrides`` may change ``train.*``, e.g. ``["train.epochs=20"]``). ``callbacks``: objects
    with ``on_start/on_epoch_start/on_step/on_epoch_end/on_end`` (see layerforge.engine.events).
    """
    from .engine.api import train as _train

    return _train(spec, data=data, overrides=overrides, out=out, resume=resume, callbacks=callbacks,
                  plugins=plugins, save=save)


def evaluate(run_dir: Any, split: str = "test", data: Any = None, checkpoint: str = "best", **kwargs: Any):
    """Metrics of a trained run on its test/val split or a labelled file; returns an EvalResult."""
    from .engine.evaluate import evaluate as _evaluate

    return _evaluate(run_dir, split=split, data=data, checkpoint=checkpoint, **kwargs)


def predict(run_dir: Any, inputs: Any, output: Any = None, probabilities: bool = False, **kwargs: Any):
    """Predictions of a trained run for a file or an array; returns a PredictResult (and writes ``output``)."""
    from .engine.predict import predict as _predict

    return _predict(run_dir, inputs, output=output, probabilities=probabilities, **kwargs)


def profile(configs: Any, **kwargs: Any):
    """Profile one config or several side by side (params, FLOPs, latency, throughput, memory).

    Keyword arguments are those of :func:`layerforge.analysis.compare.profile_configs` (settings, overrides,
    sweep, plot, quick, ...). Returns the report object that ``layerforge profile --json`` serialises.
    """
    from pathlib import Path

    from .analysis.compare import profile_configs

    paths = [configs] if isinstance(configs, (str, Path)) else list(configs)
    return profile_configs(paths, **kwargs)


__all__ = [
    "CheckpointError", "DataError", "LayerSpec", "LayerforgeError", "Spec", "SpecError", "TrainingError",
    "build_model", "evaluate", "load_spec", "predict", "profile", "register", "registry", "spec_from_dict", "spike_report", "summarize", "train",
    "validate",
]
