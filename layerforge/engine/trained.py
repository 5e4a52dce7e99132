"""A trained run as plain PyTorch: the model, the input standardisation as a module, the label names.

``lf.load_model(run_dir)`` is the model alone (``torch.nn.Module``, eval mode, the checkpoint's weights);
``lf.load_run(run_dir)`` adds what a caller needs to feed it raw inputs the way ``layerforge predict`` does:

    run = lf.load_run("runs/cnn_digits/2026-11-29_10-00-00")
    logits = run.module(run.transform(x_raw))        # or run.predictor()(x_raw): one module, both steps
    names = [run.label_names[i] for i in logits.argmax(-1)]

"Raw" means shaped like ``model.input_shape`` (what ``lf.predict`` takes as an array) but not yet
standardised. Everything is read through the front door and :class:`~layerforge.engine.rundir.RunDir`
(:func:`~layerforge.engine.evaluate.load_trained`); the export formats wrap the same modules.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..data.text import Tokenizer
    from ..graph import Graph
    from ..spec.schema import Spec
    from .rules import Head


@cache
def _module_classes() -> tuple[type, type]:
    """(Standardizer, RawInputModel), made on first use so importing layerforge does not import torch."""
    import torch
    from torch import nn

    class Standardizer(nn.Module):
        """The run's fitted input standardisation, ``(x − mean) / std`` per input, as buffers (so it is saved,
        moved and exported with the model). Inputs without statistics (integer ids) pass unchanged."""

        def __init__(self, input_names: list[str], state: dict[str, Any] | None) -> None:
            super().__init__()
            self.input_names = list(input_names)
            stats = dict((state or {}).get("inputs", {})) if (state or {}).get("kind") == "standardize" else {}
            if "" in stats:  # a single-input run saves its statistics under ""
                stats = {self.input_names[0]: stats[""]}
            self.standardized: list[bool] = []
            for i, name in enumerate(self.input_names):
                s = stats.get(name)
                self.standardized.append(s is not None)
                if s is not None:
                    shape = [int(d) for d in s["shape"]]
                    self.register_buffer(f"mean_{i}", torch.tensor(s["mean"], dtype=torch.float64).reshape(shape).float())
                    self.register_buffer(f"std_{i}", torch.tensor(s["std"], dtype=torch.float64).reshape(shape).float())

        def forward(self, *inputs: torch.Tensor) -> Any:
            out = []
            for i, x in enumerate(inputs):
                if self.standardized[i] and x.is_floating_point():
                    x = (x - getattr(self, f"mean_{i}")) / getattr(self, f"std_{i}")  # (B, *sample)
                out.append(x)
            return out[0] if len(out) == 1 else tuple(out)

        def inverse(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
            """Standardised inputs back to raw ones, ``x · std + mean`` (always a tuple)."""
            return tuple(x * getattr(self, f"std_{i}") + getattr(self, f"mean_{i}")
                         if self.standardized[i] and x.is_floating_point() else x for i, x in enumerate(inputs))

    class RawInputModel(nn.Module):
        """``model(standardize(*raw_inputs))``: one module that takes the inputs ``layerforge predict`` takes."""

        def __init__(self, transform: nn.Module, model: nn.Module) -> None:
            super().__init__()
            self.transform, self.model = transform, model

        def forward(self, *inputs: torch.Tensor) -> Any:
            x = self.transform(*inputs)
            return self.model(*x) if isinstance(x, tuple) else self.model(x)

    return Standardizer, RawInputModel


def standardizer(input_names: list[str], state: dict[str, Any] | None) -> "nn.Module":
    """The saved transform state (``RunDir.load_transform()``) as an ``nn.Module`` over positional inputs."""
    return _module_classes()[0](input_names, state)


def raw_input_model(transform: "nn.Module", model: "nn.Module") -> "nn.Module":
    """``transform`` then ``model`` as one module (what the export formats trace by default)."""
    return _module_classes()[1](transform, model)


@dataclass
class TrainedRun:
    """A trained run opened for use from plain PyTorch (see the module docstring)."""

    run_dir: Path
    spec: "Spec"
    graph: "Graph"
    module: "nn.Module"  # the trained model, eval mode; takes standardised inputs
    transform: "nn.Module"  # raw inputs → the model's inputs (identity for runs without standardisation)
    transform_state: dict[str, Any] | None  # the saved transform, as in transform.json
    label_names: list[str] | None  # class names, index = class id (None for real-valued outputs)
    task: str
    head: "Head"  # kind (class | binary | real), out_shape, num_classes, loss
    checkpoint: str  # "best" or "last": whose weights
    epoch: int | None
    input_names: list[str] = field(default_factory=list)
    tokenizer: "Tokenizer | None" = None  # text runs: characters or words ↔ ids, with the saved vocabulary

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Each input's shape per sample (no batch axis)."""
        return {k: tuple(v) for k, v in self.graph.inputs.items()}

    @property
    def output_names(self) -> list[str]:
        return list(self.graph.outputs)

    def predictor(self) -> "nn.Module":
        """One module taking raw inputs: the transform, then the model (shares their weights)."""
        return raw_input_model(self.transform, self.module)

    def __call__(self, *raw_inputs: "torch.Tensor") -> Any:
        """The model's output for raw inputs (no gradients)."""
        import torch

        with torch.inference_mode():
            return self.predictor()(*raw_inputs)


def load_run(run_dir: str | Path, checkpoint: str = "best", plugins: list[str] | None = None) -> TrainedRun:
    """Open a trained run: its spec through the front door, the ``checkpoint`` weights (best, falling back to
    last), the saved transform as a module and the label names."""
    from ..data.text import Tokenizer
    from .evaluate import head_of, load_trained

    run, spec, graph, model, which, epoch = load_trained(run_dir, checkpoint, plugins)
    head = head_of(run)
    info = run.read_json("data.json")
    meta = info.get("meta") or {}
    labels = info.get("class_names") or (meta.get("class_names") if isinstance(meta, dict) else None)
    if labels is None and head.kind == "binary":
        labels = ["0", "1"]
    state = run.load_transform()
    names = list(graph.inputs)
    transform = standardizer(names, state).eval()
    tokenizer = Tokenizer.from_meta(meta) if isinstance(meta, dict) and meta.get("vocab") else None
    return TrainedRun(run.path, spec, graph, model, transform, state, list(labels) if labels else None,
                      str(info.get("task", "")), head, which, epoch, names, tokenizer)


def load_model(run_dir: str | Path, checkpoint: str = "best", plugins: list[str] | None = None) -> "nn.Module":
    """The trained ``torch.nn.Module`` of a run (eval mode); it takes standardised inputs, see :func:`load_run`."""
    return load_run(run_dir, checkpoint, plugins).module
