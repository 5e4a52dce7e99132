"""Evaluation: a trained run's metrics on its test/val split or on a labelled file, plus the confusion
matrix for classification (a table for the CLI, a PNG in the run's plots/)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ContextManager

from ..errors import UsageError
from .losses import Head, build_loss, prepare_targets
from .metrics import EpochStats
from .rules import default_metrics
from .rundir import RUN, RunDir

if TYPE_CHECKING:
    from torch import nn

    from ..data.bundle import Split


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
                   autocast: Callable[[], ContextManager] | None = None, seed: int = 0) -> dict[str, float]:
    """Loss and metrics of ``model`` over ``split`` (eval mode, no gradients); ``stats`` keeps the rows.
    Randomness in the forward pass (rate coding) is drawn from ``seed`` (see :func:`layerforge.runtime.seeded`)."""
    import torch

    from ..runtime import seeded

    stats.reset()
    multi = isinstance(split.x, dict)
    was = model.training
    model.eval()
    with torch.inference_mode(), seeded(seed, split.y.device):
        for xb, yb in split.batches(batch_size):
            if autocast is not None:
                with autocast():
                    out = model(**xb) if multi else model(xb)
                    loss = loss_fn(out, yb)
            else:
                out = model(**xb) if multi else model(xb)
                loss = loss_fn(out, yb)
            stats.update(out, yb, loss)
    model.train(was)
    return stats.compute()


def load_trained(run_dir: str | Path, checkpoint: str = "best", plugins: list[str] | None = None,
                 overrides: list[str] | None = None) -> tuple[RunDir, Any, Any, "nn.Module", str, int | None]:
    """Open a run (its spec through the front door, with the recorded plugins and any extra ``plugins``;
    ``overrides`` must leave the weights' shapes as trained, e.g. a spiking model's time steps) and build
    its model with the chosen checkpoint's weights (best, falling back to last)."""
    from ..build import module
    from . import checkpoint as ckpt

    run = RunDir.open(run_dir)
    spec, graph = run.load_spec(overrides, plugins, train_rules=False)
    model = module(spec, graph)
    if checkpoint not in ("best", "last"):
        raise UsageError(f"unknown checkpoint '{checkpoint}'", hint="use best or last")
    which = checkpoint
    if which == "best" and not (run.best.exists() or run.best.with_name(".best.old").exists()):
        which = "last"
    manifest = ckpt.load_weights(getattr(run, which), model)
    model.eval()
    return run, spec, graph, model, which, manifest.get("epoch")


def head_of(run: RunDir) -> Head:
    h = run.read_json(RUN).get("head")
    if not h:
        from ..errors import CheckpointError

        raise CheckpointError(f"{run.path / RUN} does not record the model's head (was the run interrupted before it started?)")
    return Head(h["kind"], tuple(h["out_shape"]), h["num_classes"], h["loss"])


def evaluate(run_dir: str | Path, split: str = "test", data: str | Path | None = None, checkpoint: str = "best",
             batch_size: int | None = None, device: str = "auto", plot: bool = True,
             plugins: list[str] | None = None) -> EvalResult:
    """Metrics of a trained run on its ``test`` (or ``val``) split, or on a labelled file ``data``."""
    import torch

    from ..build import data_facts
    from ..data import load_data, load_split
    from ..runtime import resolve_device

    run, spec, graph, model, which, epoch = load_trained(run_dir, checkpoint, plugins)
    facts = data_facts(graph)
    dev = resolve_device(device)
    model.to(dev)
    info = run.read_json("data.json")
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

    target = Split(target.x, prepare_targets(head, target.y, torch.float32), target.lengths).to(dev)
    metrics = list(spec.train.metrics) if spec.train.metrics is not None else default_metrics(info.get("task", ""), head.kind)
    loss_spec = spec.train.loss
    loss_is_nll = head.loss == "cross_entropy" and not (loss_spec and (loss_spec.label_smoothing or loss_spec.class_weights))
    stats = EpochStats(head, metrics, len(target), dev, loss_is_nll)
    values = evaluate_split(model, target, stats, build_loss(head, loss_spec, dev),
                            batch_size or spec.train.eval_batch_size or 4 * spec.train.batch_size, seed=spec.seed)
    cm = stats.confusion()
    class_names = info.get("class_names") or (meta.get("class_names") if isinstance(meta, dict) else None)
    result = EvalResult(split=name, samples=len(target), checkpoint=which, epoch=epoch, metrics=values,
                        confusion=cm.tolist() if cm is not None else None, class_names=class_names, run_dir=run.path)
    if cm is not None and plot:
        result.plot = write_confusion_png(run, cm.tolist(), class_names, Path(name).stem if data is not None else name)
    run.write_json(f"eval_{Path(name).stem if data is not None else name}.json", result.to_dict())
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
