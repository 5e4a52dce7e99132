"""Evaluation: a trained run's metrics on its test/val split or on a labelled file, plus the confusion
matrix for classification (a table for the CLI, a PNG in the run's plots/)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ContextManager

from ..errors import LayerforgeWarning, UsageError
from .losses import Head, build_loss, prepare_targets
from .metrics import EpochStats
from .rules import default_metrics
from .rundir import DATA, RunDir

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..data.bundle import Split
    from ..runtime import Speedups


@dataclass
class EvalResult:
    split: str  # "test", "val" or the file evaluated
    samples: int
    checkpoint: str  # which checkpoint's weights ("best" or "last") and its epoch
    epoch: int | None
    metrics: dict[str, float]
    confusion: list[list[int]] | None = None  # rows: true class, columns: predicted
    class_names: list[str] | None = None
    plot: Path | None = None
    run_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir) if self.run_dir else None, "split": self.split, "samples": self.samples,
                "checkpoint": self.checkpoint, "epoch": self.epoch, "metrics": self.metrics,
                "confusion": self.confusion, "class_names": self.class_names,
                "plot": str(self.plot) if self.plot else None}


def evaluate_split(model: "nn.Module", split: "Split", stats: EpochStats, loss_fn: Callable, batch_size: int,
                   autocast: Callable[[], ContextManager] | None = None, inference_mode: bool = True,
                   seed: int = 0) -> dict[str, float]:
    """Loss and metrics of ``model`` over ``split`` (eval mode, no gradients: ``torch.inference_mode``, or
    ``torch.no_grad`` with ``inference_mode=False``); ``stats`` keeps the rows. Randomness in the forward pass
    (rate coding) is drawn from ``seed`` (see :func:`layerforge.runtime.seeded`)."""
    from ..runtime import inference_context, seeded

    stats.reset()
    multi = isinstance(split.x, dict)
    was = model.training
    model.eval()
    with inference_context(inference_mode), seeded(seed, split.y.device):
        # Keras' evaluate counts the weight penalties in the loss too (one value: the weights do not change)
        reg = model.regularization_loss() if getattr(model, "regularized", False) else None
        for xb, yb in split.batches(batch_size):
            if autocast is not None:
                with autocast():
                    out = model(**xb) if multi else model(xb)
                    loss = loss_fn(out, yb)
            else:
                out = model(**xb) if multi else model(xb)
                loss = loss_fn(out, yb)
            if reg is not None:
                loss = loss + reg
                stats.add_reg(reg)
            stats.update(out, yb, loss)
    model.train(was)
    return stats.compute()


def load_trained(run_dir: str | Path, checkpoint: str = "best", plugins: list[str] | None = None,
                 overrides: list[str] | None = None, trust_plugins: bool = False
                 ) -> tuple[RunDir, Any, Any, "nn.Module", str, int | None]:
    """Open a run (verified; its spec through the front door, with the recorded plugins and any extra
    ``plugins``; ``overrides`` must leave the weights' shapes as trained, e.g. a spiking model's time steps)
    and build its model with the chosen checkpoint's weights (best, falling back to last). Reads only: works
    on a read-only run directory."""
    from ..build import module
    from . import checkpoint as ckpt

    run = RunDir.open(run_dir)
    spec, graph = run.load_spec(overrides, plugins, train_rules=False, trust_plugins=trust_plugins)
    model = module(spec, graph)
    if checkpoint not in ("best", "last"):
        raise UsageError(f"unknown checkpoint '{checkpoint}'", hint="use best or last")
    which = checkpoint
    if which == "best" and not ckpt.exists(run.best):
        which = "last"
    manifest = ckpt.load_weights(getattr(run, which), model)
    model.eval()
    return run, spec, graph, model, which, manifest.get("epoch")


def inference_speed(spec: Any, model: "nn.Module", device: "torch.device") -> "Speedups":
    """The run's ``train.fast`` resolved for inference on ``device`` (never compiled), with ``model`` moved
    there in the memory format it chooses."""
    import torch

    from ..runtime import resolve_speedups

    t = spec.train
    model.to(device)
    speed = resolve_speedups(t.fast, False, t.deterministic, device, t.optimizer.name, model)
    if speed.channels_last:
        model.to(memory_format=torch.channels_last)
    return speed


def head_of(run: RunDir) -> Head:
    """The model's head as training decided it (data.json, checksummed)."""
    from ..errors import CheckpointError

    h = run.read_json(DATA).get("head")
    try:
        return Head(str(h["kind"]), tuple(int(d) for d in h["out_shape"]), h["num_classes"], str(h["loss"]))
    except (TypeError, KeyError, ValueError):
        raise CheckpointError(f"{run.path / DATA} does not record the model's head",
                              hint="was the run interrupted before it started? retrain it") from None


def evaluate(run_dir: str | Path, split: str = "test", data: str | Path | None = None, checkpoint: str = "best",
             batch_size: int | None = None, device: str = "auto", plot: bool = True,
             plugins: list[str] | None = None, trust_plugins: bool = False) -> EvalResult:
    """Metrics of a trained run on its ``test`` (or ``val``) split, or on a labelled file ``data``. The
    results are saved in the run (eval_<split>.json, a confusion-matrix PNG) when it is writable; a
    read-only run is evaluated all the same, with a warning that nothing was saved."""
    import torch

    from ..build import data_facts
    from ..data import load_data, load_split
    from ..runtime import laid_out, resolve_device, run_flags

    run, spec, graph, model, which, epoch = load_trained(run_dir, checkpoint, plugins, trust_plugins=trust_plugins)
    facts = data_facts(graph)
    dev = resolve_device(device)
    speed = inference_speed(spec, model, dev)
    info = run.read_json(DATA)
    meta = info.get("meta", {})
    if data is not None:
        target = load_split(Path(data), facts, run.load_transform(), meta)
        name = str(data)
    else:
        if split not in ("test", "val"):
            raise UsageError(f"unknown split '{split}'", hint="use --split test or --split val")
        bundle = load_data(spec, facts)
        target = getattr(bundle, split)
        if target is None or len(target) == 0:
            other = "val" if split == "test" else "test"
            has_other = getattr(bundle, other) is not None and len(getattr(bundle, other))
            raise UsageError(f"the run's data has no {split} split",
                             hint=(f"use --split {other}, " if has_other else "")
                             + f"set data.{split} (a fraction) when training, or give a labelled file with --data FILE")
        name = split
    head = head_of(run)
    from ..data.bundle import Split

    x = {k: laid_out(v, speed) for k, v in target.x.items()} if isinstance(target.x, dict) else laid_out(target.x, speed)
    padded = target.lengths is not None
    target = Split(x, prepare_targets(head, target.y, torch.float32, padded), target.lengths,
                   padding=target.padding).to(dev)
    metrics = list(spec.train.metrics) if spec.train.metrics is not None else default_metrics(info.get("task", ""), head.kind)
    loss_spec = spec.train.loss
    loss_is_nll = head.loss == "cross_entropy" and not (loss_spec and (loss_spec.label_smoothing or loss_spec.class_weights))
    stats = EpochStats(head, metrics, len(target), dev, loss_is_nll)
    with run_flags(speed, None, spec.train.deterministic):
        values = evaluate_split(model, target, stats, build_loss(head, loss_spec, dev, padded),
                                batch_size or spec.train.eval_batch_size or 4 * spec.train.batch_size,
                                inference_mode=speed.inference_mode, seed=spec.seed)
    cm = stats.confusion()
    class_names = info.get("class_names") or (meta.get("class_names") if isinstance(meta, dict) else None)
    result = EvalResult(split=name, samples=len(target), checkpoint=which, epoch=epoch, metrics=values,
                        confusion=cm.tolist() if cm is not None else None, class_names=class_names, run_dir=run.path)
    tag = Path(name).stem if data is not None else name
    try:
        if cm is not None and plot:
            result.plot = write_confusion_png(run, cm.tolist(), class_names, tag)
        run.write_json(f"eval_{tag}.json", result.to_dict())
    except OSError as e:
        warnings.warn(LayerforgeWarning(f"the results were not saved in {run.path} ({e.strerror or e}): the run "
                                        "directory is not writable"), stacklevel=2)
    return result


def write_confusion_png(run: RunDir, cm: list[list[int]], class_names: list[str] | None, tag: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    arr = np.asarray(cm)
    c = arr.shape[0]
    names = class_names if class_names and len(class_names) == c else [str(i) for i in range(c)]
    size = min(12, max(4, 0.45 * c + 2))
    fig, ax = plt.subplots(figsize=(size, size * 0.9), dpi=100)
    im = ax.imshow(arr, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    if c <= 40:
        ax.set_xticks(range(c), labels=names, rotation=90 if c > 10 else 0)
        ax.set_yticks(range(c), labels=names)
    if c <= 20:
        top = arr.max() or 1
        for i in range(c):
            for j in range(c):
                ax.text(j, i, str(arr[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if arr[i, j] > top / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix ({tag})")
    fig.tight_layout()
    run.plots.mkdir(exist_ok=True)
    out = run.plots / f"confusion_{tag}.png"
    fig.savefig(out)
    plt.close(fig)
    return out
