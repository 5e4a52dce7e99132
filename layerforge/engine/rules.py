"""What the ``train:`` section must agree with, as pure rules (torch-free): the loss against the model's
output, the metric names against the head, the monitor key against the metrics that will exist, and an
output activation that the loss applies again.

The front door (:func:`layerforge.build.load`) runs them from the spec alone, where the head can be told
from the loss or the task, so ``validate`` reports them at file:line:col before any data is read; the
:class:`~layerforge.engine.trainer.Trainer` runs the same rules again with the head the data decided.
Each rule returns :class:`Problem` objects (a key path, a message, a hint); the caller locates them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from ..errors import KeyPath
from ..text import suggest

if TYPE_CHECKING:
    from .schema import LossSpec, TrainSpec

HEAD_OF_LOSS = {"cross_entropy": "class", "bce": "binary", "mse": "real", "mae": "real", "huber": "real"}
CLASS_METRICS = {"accuracy", "precision", "recall", "f1", "perplexity"}
REAL_METRICS = {"mae", "rmse", "r2"}
LOWER_IS_BETTER = {"loss", "mae", "rmse", "perplexity"}
CLASS_TASKS = ("classification", "sequence_classification", "language_model")
# What the output activation means for a loss that applies it itself.
APPLIED_BY = {"class": ("softmax", "log_softmax"), "binary": ("sigmoid",)}


@dataclass(frozen=True)
class Head:
    """How the model's output meets the targets (decided once, before training)."""

    kind: str  # class | binary | real
    out_shape: tuple[int, ...]  # per sample
    num_classes: int | None  # class: C; binary: 2
    loss: str

    @property
    def positions(self) -> int:
        """Predictions per sample: time steps for per-step outputs (every logit for binary)."""
        return numel(self.out_shape if self.kind == "binary" else self.out_shape[:-1])

    @property
    def width(self) -> int:
        """Values per position: features for real targets, 1 otherwise."""
        return self.out_shape[-1] if self.kind == "real" else 1


def numel(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


@dataclass(frozen=True)
class Problem:
    """One disagreement, at a spec key path; ``warning``: it trains, but probably not as meant."""

    path: KeyPath
    message: str
    hint: str | None = None
    warning: bool = False


def head_kind(loss: "LossSpec | None", task: str | None, out_shape: tuple[int, ...]) -> str | None:
    """The head a spec implies without seeing its targets: from the loss, else from a known task; None
    when only the data can tell (a file whose task is inferred from its targets, per-step real targets)."""
    if loss is not None:
        return HEAD_OF_LOSS[loss.name]
    if task == "regression":
        return "real"
    if task in CLASS_TASKS:
        return "binary" if out_shape[-1:] == (1,) and task != "language_model" else "class"
    return None


def default_metrics(task: str | None, kind: str) -> list[str]:
    if kind == "real":
        return ["mae", "rmse", "r2"]
    if task == "language_model":
        return ["accuracy", "perplexity"]
    return ["accuracy"]


def mode_of(name: str) -> str:
    """'min' or 'max' for a metric key such as val_loss or val_accuracy."""
    base = name[4:] if name.startswith("val_") else name
    return "min" if base in LOWER_IS_BETTER else "max"


def loss_problems(loss: "LossSpec | None", kind: str, out_shape: tuple[int, ...], output_at: KeyPath) -> list[Problem]:
    """The loss against the output: class logits need two or more values, class_weights one per class."""
    out: list[Problem] = []
    name = loss.name if loss is not None else "cross_entropy"
    if kind == "class" and out_shape[-1] < 2:
        out.append(Problem(output_at, f"{name} needs one logit per class, but the model's output {out_shape} has "
                           f"{out_shape[-1]} value per position",
                           "give the last layer one unit per class, or use loss: bce with one output for two classes"))
    if loss is not None and loss.class_weights is not None:
        at = ("train", "loss", "class_weights")
        if kind != "class":
            out.append(Problem(at, f"class_weights only applies to cross_entropy, not {name}", "remove class_weights"))
        elif out_shape[-1] >= 2 and len(loss.class_weights) != out_shape[-1]:
            out.append(Problem(at, f"class_weights has {len(loss.class_weights)} entries but the model outputs "
                               f"{out_shape[-1]} classes", "give one weight per class"))
    return out


def metric_problems(metrics: Sequence[str], kind: str, num_classes: int | None, loss: str) -> list[Problem]:
    """Metrics that cannot be computed for this head (accuracy on real targets, top_5 of 3 classes...)."""
    out = []
    for i, m in enumerate(metrics):
        at = ("train", "metrics", i)
        if kind == "real" and (m in CLASS_METRICS or m.startswith("top_")):
            out.append(Problem(at, f"metric '{m}' needs class labels, but the targets are real values ({loss} loss)",
                               "use mae, rmse or r2"))
        elif kind != "real" and m in REAL_METRICS:
            out.append(Problem(at, f"metric '{m}' needs real-valued targets, but this is a classification head",
                               "use accuracy, top_<k>, precision, recall, f1 or perplexity"))
        elif m.startswith("top_") and kind == "class" and num_classes is not None and int(m[4:]) > num_classes:
            out.append(Problem(at, f"metric '{m}' needs at least {m[4:]} classes, the model has {num_classes}",
                               f"use top_1 .. top_{num_classes}"))
        elif m.startswith("top_") and kind == "binary":
            out.append(Problem(at, f"metric '{m}' needs a multi-class head (one logit per class)", "use accuracy"))
        elif m == "perplexity" and kind != "class":
            out.append(Problem(at, "perplexity needs a cross_entropy head", None))
    return out


def metric_keys(metrics: Sequence[str], has_val: bool) -> list[str]:
    """The keys each epoch record will hold: loss and the metrics, and their val_ twins with a val split."""
    keys = ["loss", *metrics]
    return keys + ([f"val_{k}" for k in keys] if has_val else [])


def monitor_problems(train: "TrainSpec", metrics: Sequence[str], has_val: bool | None) -> list[Problem]:
    """``early_stopping.monitor`` and ``schedule.monitor`` must name a key of the epoch records.
    ``has_val`` None: unknown (data given in Python), so val_ keys are allowed."""
    names = [(("train", "early_stopping", "monitor"), train.early_stopping.monitor)]
    if train.schedule.name == "reduce_on_plateau" and train.schedule.monitor:
        names.append((("train", "schedule", "monitor"), train.schedule.monitor))
    allowed = metric_keys(metrics, has_val is not False)
    out = []
    for at, name in names:
        if name == "auto" or name in allowed:
            continue
        hint = suggest(name, allowed) or f"choose one of: {', '.join(allowed)}"
        if name.startswith("val_") and has_val is False and name[4:] in allowed:
            hint = "there is no validation split: monitor a training metric such as 'loss', or set data.val"
        out.append(Problem(at, f"cannot monitor '{name}': this run's metrics will be {', '.join(allowed)}", hint))
    return out


def output_activation_problem(activation: str | None, kind: str | None, loss: str | None, output_at: KeyPath,
                              layer: str) -> Problem | None:
    """A softmax (sigmoid) on the output before cross_entropy (bce), which applies it again: it trains, badly.
    A warning with the fix, like Keras' from_logits warning."""
    if activation is None or kind not in APPLIED_BY or activation not in APPLIED_BY[kind]:
        return None
    loss = loss or ("cross_entropy" if kind == "class" else "bce")
    inner = "log-softmax" if kind == "class" else "sigmoid"
    return Problem((*output_at, "activation"),
                   f"the output layer '{layer}' applies {activation}, but {loss} expects raw logits and applies "
                   f"{inner} itself, so the model would be trained through a double {inner.removeprefix('log-')}",
                   f"remove activation: {activation} from '{layer}' (Keras: from_logits=True); "
                   "'layerforge predict --probabilities' gives the probabilities", warning=True)
