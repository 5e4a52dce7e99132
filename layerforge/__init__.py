"""layerforge: try a neural-network architecture from a YAML spec.

Python API (importing this package does not import torch; the functions do when called)::

    import layerforge as lf
    spec, graph = lf.load_spec("configs/cnn_digits.yaml", overrides=["model.layers.conv1.filters=16"])
    model = lf.build_model(spec)          # an ordinary torch.nn.Module
    rows = lf.summarize(spec, batch_size=32)

Every function that starts from a spec goes through the front door, :mod:`layerforge.build`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import CheckpointError, DataError, ExportError, LayerforgeError, LayerforgeWarning, MissingExtraError, \
    SpecError, SpecWarning, TrainingError

# Loaded on first use (PEP 562), so `import layerforge` and `layerforge --help` stay light.
_LAZY = {
    "LayerSpec": "layerforge.layers.registry", "register": "layerforge.layers.registry",
    "registry": "layerforge.layers.registry", "Spec": "layerforge.spec.schema",
    "spike_report": "layerforge.analysis.spiking",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'layerforge' has no attribute {name!r}")


if TYPE_CHECKING:
    from torch import nn

    from .analysis.summary import Summary
    from .engine.trained import TrainedRun
    from .export import ExportResult
    from .graph import Graph
    from .spec.schema import Spec


def load_spec(spec: Any, overrides: list[str] | None = None, plugins: list[str] | None = None, *,
              trust_plugins: bool = False) -> "tuple[Spec, Graph]":
    """A validated Spec and its shape-checked Graph from a YAML path, a mapping or a Spec, with ``--set``
    style ``overrides`` and extra plugin files. Raises SpecError (every problem, located). This is the front
    door, :func:`layerforge.build.load`. ``trust_plugins``: import a ``plugins:`` file whose pinned sha256
    no longer matches (refused otherwise)."""
    from .build import load

    return load(spec, overrides, plugins, trust_plugins=trust_plugins)


def spec_from_dict(data: dict, overrides: list[str] | None = None, plugins: list[str] | None = None
                   ) -> "tuple[Spec, Graph]":
    """:func:`load_spec` for a spec written as a Python dict (errors have no file positions)."""
    return load_spec(data, overrides, plugins)


def validate(spec: Any, overrides: list[str] | None = None, plugins: list[str] | None = None,
             data: bool = True, *, trust_plugins: bool = False) -> "tuple[Spec, Graph]":
    """What ``layerforge validate`` checks, without allocating weights: schema, layer parameters,
    references, shapes, size, the train section against the model, and (``data=True``) the first samples
    of the data against the model, and ``model.init_from``'s run and renames. Returns (Spec, Graph); raises
    SpecError."""
    from .build import load
    from .engine.init_from import check_init_from

    spec_obj, graph = load(spec, overrides, plugins, check_data=data, trust_plugins=trust_plugins)
    check_init_from(spec_obj, graph)
    return spec_obj, graph


def build_model(spec: Any, overrides: list[str] | None = None, seed: int | None = None,
                plugins: list[str] | None = None) -> "nn.Module":
    """Build the spec's model as a ``torch.nn.Module`` (weights initialised from ``seed`` or the spec's seed)."""
    from .build import build

    return build(spec, overrides, plugins, seed=seed)[2]


def summarize(spec: Any, batch_size: int = 1, overrides: list[str] | None = None,
              plugins: list[str] | None = None) -> "Summary":
    """Per-layer summary (output shape, parameters, FLOPs) and totals; see layerforge.analysis.summary."""
    from .analysis.summary import summarize as _summarize
    from .build import load

    s, graph = load(spec, overrides, plugins)
    return _summarize(s, graph, batch_size)


def train(spec: Any = None, *, data: Any = None, overrides: list[str] | None = None, out: Any = None,
          resume: Any = None, callbacks: Any = (), plugins: list[str] | None = None, save: bool = True,
          trust_plugins: bool = False):
    """Train a spec's model; returns a :class:`~layerforge.engine.events.TrainResult`.

    ``spec``: a YAML path, a dict or a Spec (its ``data:`` section is loaded unless ``data`` is a
    DataBundle). ``out``: the run directory (default ``<train.out>/<name>/<timestamp>``); ``save=False``
    writes nothing. ``resume``: a run directory to continue exactly where it stopped (``spec`` must be
    None; ``overrides`` may change ``train.*``, e.g. ``["train.epochs=20"]``). ``callbacks``: objects
    with ``on_start/on_epoch_start/on_step/on_epoch_end/on_end`` (see layerforge.engine.events).
    ``trust_plugins``: import a plugin file whose recorded sha256 no longer matches (refused otherwise).
    """
    from .engine.api import train as _train

    return _train(spec, data=data, overrides=overrides, out=out, resume=resume, callbacks=callbacks,
                  plugins=plugins, save=save, trust_plugins=trust_plugins)


def evaluate(run_dir: Any, split: str = "test", data: Any = None, checkpoint: str = "best", **kwargs: Any):
    """Metrics of a trained run on its test/val split or a labelled file; returns an EvalResult.
    ``plugins=[...]``: extra plugin files (the run's own are recorded in its spec.yaml and imported only
    while their sha256 matches; ``trust_plugins=True`` imports them anyway)."""
    from .engine.evaluate import evaluate as _evaluate

    return _evaluate(run_dir, split=split, data=data, checkpoint=checkpoint, **kwargs)


def predict(run_dir: Any, inputs: Any, output: Any = None, probabilities: bool = False, **kwargs: Any):
    """Predictions of a trained run for a file or an array; returns a PredictResult (and writes ``output``).
    ``plugins=[...]``: extra plugin files (the run's own are recorded in its spec.yaml and imported only
    while their sha256 matches; ``trust_plugins=True`` imports them anyway)."""
    from .engine.predict import predict as _predict

    return _predict(run_dir, inputs, output=output, probabilities=probabilities, **kwargs)


def load_model(run_dir: Any, checkpoint: str = "best", plugins: list[str] | None = None) -> "nn.Module":
    """The trained ``torch.nn.Module`` of a run directory (eval mode, the ``checkpoint`` weights: best, falling
    back to last). It takes standardised inputs; :func:`load_run` gives the transform for raw ones."""
    from .engine.trained import load_model as _load_model

    return _load_model(run_dir, checkpoint, plugins)


def load_run(run_dir: Any, checkpoint: str = "best", plugins: list[str] | None = None) -> "TrainedRun":
    """A trained run for plain PyTorch: ``.module`` (the model), ``.transform`` (raw inputs → the model's,
    an ``nn.Module``), ``.predictor()`` (both as one module), ``.label_names``, ``.spec``, ``.head``."""
    from .engine.trained import load_run as _load_run

    return _load_run(run_dir, checkpoint, plugins)


def export_run(run_dir: Any, format: str = "onnx", **kwargs: Any) -> "ExportResult":
    """Export a trained run to ``onnx``, ``pt2`` or ``safetensors``, checked against PyTorch on its validation
    data; keyword arguments are those of :func:`layerforge.export.export_run` (checkpoint, opset,
    dynamic_batch, batch_size, include_transform, out, tolerance, plugins)."""
    from .export import export_run as _export_run

    return _export_run(run_dir, format, **kwargs)


def generate(run_dir: Any, prompt: str, tokens: int = 200, **kwargs: Any):
    """Continue ``prompt`` with a trained character language model; returns a GenerateResult (``text``, the
    ``seed`` used, notes). Keyword arguments: ``temperature`` (0 = greedy), ``top_k``, ``seed``,
    ``checkpoint``, ``device``, ``plugins``; see :func:`layerforge.engine.generate.generate`."""
    from .engine.generate import generate as _generate

    return _generate(run_dir, prompt, tokens=tokens, **kwargs)


def profile(configs: Any, **kwargs: Any):
    """Profile one config or several side by side (params, FLOPs, latency, throughput, memory).

    Keyword arguments are those of :func:`layerforge.analysis.compare.profile_configs` (settings, overrides,
    sweep, plot, quick, ...). Returns the report object that ``layerforge profile --json`` serialises.
    """
    from pathlib import Path

    from .analysis.compare import profile_configs

    paths = [configs] if isinstance(configs, (str, Path)) else list(configs)
    return profile_configs(paths, **kwargs)


def search(spec: Any, *, overrides: list[str] | None = None, plugins: list[str] | None = None, trials: int | None = None,
           timeout: float | None = None, workers: int = 1, storage: str | None = None, study: str = "default",
           resume: bool = False, callbacks: Any = ()):
    """Architecture and hyper-parameter search over a spec's ``search:`` section, on Optuna (``pip install -e
    ".[search]"``); returns a :class:`~layerforge.search.events.SearchResult` (see docs/search.md).

    Every trial is an ordinary run directory under ``<train.out>/<name>/search-<study>/trial-<k>``. ``trials``:
    the study's total (default ``search.trials``); ``timeout``: seconds after which no trial starts; ``workers``:
    processes on this machine sharing the study (torch threads split between them); ``storage``: an Optuna
    storage URL (default: a journal file in the study directory); ``resume``: continue an existing study (or
    add workers to it); ``callbacks``: objects with ``on_start/on_trial/on_end`` (layerforge.search.events).
    At the end the study directory holds best.yaml, report.json and plots/.
    """
    from .search.api import search as _search

    return _search(spec, overrides=overrides, plugins=plugins, trials=trials, timeout=timeout, workers=workers,
                   storage=storage, study=study, resume=resume, callbacks=callbacks)


__all__ = [
    "CheckpointError", "DataError", "ExportError", "LayerSpec", "LayerforgeError", "LayerforgeWarning",
    "MissingExtraError", "Spec", "SpecError", "SpecWarning", "TrainingError", "__version__", "build_model", "evaluate",
    "export_run", "generate", "load_model", "load_run", "load_spec", "predict", "profile", "register", "registry",
    "search", "spec_from_dict", "spike_report", "summarize", "train", "validate",
]
