"""Losses, and the "head": how the model's output is compared with the targets.

The head is decided once, before training, from the task, the model's output shape and the targets:

- ``class``  — integer targets ``(…)``, logits ``(…, C)``: cross_entropy, class metrics.
- ``binary`` — 0/1 targets, one logit per position: bce (with logits), class metrics with 2 classes.
- ``real``   — real targets with as many values as the output: mse / mae / huber, regression metrics.

Targets are reshaped and cast once for the whole split (not per step), so the step's loss is a single
functional call.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..errors import DataError, Issue, SpecError

if TYPE_CHECKING:
    import torch

    from .schema import LossSpec

LossFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]

HEAD_OF_LOSS = {"cross_entropy": "class", "bce": "binary", "mse": "real", "mae": "real", "huber": "real"}


@dataclass(frozen=True)
class Head:
    kind: str  # class | binary | real
    out_shape: tuple[int, ...]  # per sample
    num_classes: int | None  # class: C; binary: 2
    loss: str

    @property
    def positions(self) -> int:
        """Predictions per sample: time steps for per-step outputs (every logit for binary)."""
        return _numel(self.out_shape if self.kind == "binary" else self.out_shape[:-1])

    @property
    def width(self) -> int:
        """Values per position: features for real targets, 1 otherwise."""
        return self.out_shape[-1] if self.kind == "real" else 1


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def resolve_head(task: str, out_shape: tuple[int, ...], y: "torch.Tensor", num_classes: int | None,
                 loss: "LossSpec | None", source: str | None = None) -> Head:
    """Decide how outputs meet targets; raise a clear error when the model's output cannot fit the data."""
    import torch

    y_shape = tuple(y.shape[1:])
    integer = not torch.is_floating_point(y)
    if loss is not None:
        kind = HEAD_OF_LOSS[loss.name]
    elif task == "regression" or not integer and task not in ("classification", "sequence_classification", "language_model"):
        kind = "real"
    elif out_shape[-1] == 1 and out_shape[:-1] == y_shape and (num_classes in (None, 2)):
        kind = "binary"
    elif out_shape == y_shape and num_classes in (None, 2) and task in ("classification", "sequence_classification"):
        kind = "binary"
    else:
        kind = "class"
    loss_name = loss.name if loss is not None else {"class": "cross_entropy", "binary": "bce", "real": "mse"}[kind]
    out_txt = f"the model's output shape per sample is {out_shape}"

    if kind == "class":
        if not integer:
            raise DataError(f"loss {loss_name} needs integer class labels, but the targets are {y.dtype}",
                            hint="use a regression loss (mse, mae, huber) or a classification task")
        if out_shape[:-1] != y_shape:
            want = (*y_shape, num_classes or "C")
            raise DataError(f"{out_txt}, but the targets have shape {y_shape} per sample, so the output should be {want}",
                            hint="make the last layer produce one logit per class at each target position "
                                 "(e.g. return_sequences for per-step targets, or pool/flatten for one label per sample)")
        c = out_shape[-1]
        if num_classes is not None and c != num_classes:
            raise DataError(f"{out_txt}: {c} logits, but the data has {num_classes} classes",
                            hint=f"set the last layer's units to {num_classes}")
        if c < 2:
            raise DataError(f"{out_txt}: one value cannot hold class logits for cross_entropy",
                            hint="use loss: bce for a binary task with one output, or give the last layer one unit per class")
        if y.numel() and int(y.max()) >= c or y.numel() and int(y.min()) < 0:
            raise DataError(f"labels must lie in 0..{c - 1} for {c} output logits, found {int(y.min())}..{int(y.max())}",
                            hint="check the target column, or the last layer's units")
        return Head("class", out_shape, c, loss_name)
    if kind == "binary":
        if _numel(out_shape) != _numel(y_shape) or (out_shape[-1:] != (1,) and out_shape != y_shape):
            raise DataError(f"{out_txt}, but bce needs one logit per target (targets: {y_shape} per sample)",
                            hint="give the last layer units: 1 and no activation (bce applies the sigmoid itself)")
        if y.numel() and (float(y.min()) < 0 or float(y.max()) > 1):
            raise DataError("bce needs targets in [0, 1]", hint="use cross_entropy for more than two classes")
        return Head("binary", out_shape, 2, loss_name)
    if _numel(out_shape) != _numel(y_shape):
        raise DataError(f"{out_txt} ({_numel(out_shape)} values), but the targets have shape {y_shape} per sample "
                        f"({_numel(y_shape)} values)",
                        hint="make the last layer output one value per target (e.g. dense units: "
                             f"{y_shape[-1] if y_shape else 1})")
    return Head("real", out_shape, None, loss_name)


def prepare_targets(head: Head, y: "torch.Tensor", dtype: "torch.dtype") -> "torch.Tensor":
    """Cast/reshape a split's targets once so each step's loss is a plain call."""
    import torch

    if head.kind == "class":
        return y.to(torch.long)
    return y.to(dtype).reshape(y.shape[0], *head.out_shape)


def check_loss_options(loss: "LossSpec | None", head: Head, source: str | None) -> None:
    if loss is None:
        return
    if loss.class_weights is not None:
        if head.kind != "class":
            raise SpecError([Issue("class_weights only applies to cross_entropy", ("train", "loss", "class_weights"),
                                   "remove class_weights", source)])
        if len(loss.class_weights) != head.num_classes:
            raise SpecError([Issue(f"class_weights has {len(loss.class_weights)} entries but there are "
                                   f"{head.num_classes} classes", ("train", "loss", "class_weights"),
                                   "give one weight per class", source)])


def build_loss(head: Head, spec: "LossSpec | None", device: "torch.device") -> LossFn:
    """The loss as one closure ``(output, target) -> scalar`` specialised for the head (no branching per step)."""
    import torch
    import torch.nn.functional as F

    name = head.loss
    if name == "cross_entropy":
        smoothing = spec.label_smoothing if spec else 0.0
        weight = torch.tensor(spec.class_weights, dtype=torch.float32, device=device) if spec and spec.class_weights else None
        c = head.num_classes
        if len(head.out_shape) == 1:
            if weight is None and smoothing == 0.0:
                return F.cross_entropy
            return lambda out, y: F.cross_entropy(out, y, weight=weight, label_smoothing=smoothing)
        return lambda out, y: F.cross_entropy(out.reshape(-1, c), y.reshape(-1), weight=weight, label_smoothing=smoothing)
    if name == "bce":
        pos = torch.tensor(spec.pos_weight, device=device) if spec and spec.pos_weight else None
        if pos is None:
            return F.binary_cross_entropy_with_logits
        return lambda out, y: F.binary_cross_entropy_with_logits(out, y, pos_weight=pos)
    if name == "mse":
        return F.mse_loss
    if name == "mae":
        return F.l1_loss
    delta = spec.delta if spec else 1.0
    return lambda out, y: F.huber_loss(out, y, delta=delta)


def output_activation_warning(graph: Any, head: Head) -> str | None:
    """A model ending in softmax/sigmoid fed to a loss that expects logits trains badly: say so."""
    last = graph.node(graph.outputs[0]) if graph.outputs[0] not in graph.inputs else None
    act = getattr(last.layer, "activation", None) if last is not None else None
    if head.kind == "class" and act in ("softmax", "log_softmax"):
        return (f"the output layer '{last.name}' applies {act}, but cross_entropy expects raw logits "
                "(it applies log-softmax itself); remove the activation for correct training")
    if head.kind == "binary" and act == "sigmoid":
        return (f"the output layer '{last.name}' applies sigmoid, but bce expects a raw logit; remove the activation")
    return None
