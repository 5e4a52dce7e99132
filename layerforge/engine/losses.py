"""Losses, and the "head": how the model's output is compared with the targets.

The head is decided once, before training, from the task, the model's output shape and the targets:

- ``class``  — integer targets ``(…)``, logits ``(…, C)``: cross_entropy, class metrics.
- ``binary`` — 0/1 targets, one logit per position: bce (with logits), class metrics with 2 classes.
- ``real``   — real targets with as many values as the output: mse / mae / huber, regression metrics.

Targets are reshaped and cast once for the whole split (not per step), so the step's loss is a single
functional call.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..errors import DataError, TrainingError
from .rules import HEAD_OF_LOSS, Head, numel

IGNORE = -100  # the target of a padded step (torch's default ignore_index; data.ragged writes it)

if TYPE_CHECKING:
    import torch

    from .schema import LossSpec

LossFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]

__all__ = ["HEAD_OF_LOSS", "Head", "LossFn", "build_loss", "check_finite_or_raise", "prepare_targets", "resolve_head",
           "valid_targets"]


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
        y = y[y != IGNORE]  # padded steps of variable-length sequences (cross_entropy skips them)
        if y.numel() and int(y.max()) >= c or y.numel() and int(y.min()) < 0:
            raise DataError(f"labels must lie in 0..{c - 1} for {c} output logits, found {int(y.min())}..{int(y.max())}",
                            hint="check the target column, or the last layer's units")
        return Head("class", out_shape, c, loss_name)
    if kind == "binary":
        if numel(out_shape) != numel(y_shape) or (out_shape[-1:] != (1,) and out_shape != y_shape):
            raise DataError(f"{out_txt}, but bce needs one logit per target (targets: {y_shape} per sample)",
                            hint="give the last layer units: 1 and no activation (bce applies the sigmoid itself)")
        y = valid_targets(y)  # padded steps of variable-length sequences
        if y.numel() and (float(y.min()) < 0 or float(y.max()) > 1):
            raise DataError("bce needs targets in [0, 1]", hint="use cross_entropy for more than two classes")
        return Head("binary", out_shape, 2, loss_name)
    if numel(out_shape) != numel(y_shape):
        raise DataError(f"{out_txt} ({numel(out_shape)} values), but the targets have shape {y_shape} per sample "
                        f"({numel(y_shape)} values)",
                        hint="make the last layer output one value per target (e.g. dense units: "
                             f"{y_shape[-1] if y_shape else 1})")
    return Head("real", out_shape, None, loss_name)


def valid_targets(y: "torch.Tensor") -> "torch.Tensor":
    """The targets that are not padding: integer targets ≠ -100, real ones not NaN (flattened)."""
    import torch

    return y[~torch.isnan(y)] if torch.is_floating_point(y) else y[y != IGNORE]


def prepare_targets(head: Head, y: "torch.Tensor", dtype: "torch.dtype", padded: bool = False) -> "torch.Tensor":
    """Cast/reshape a split's targets once so each step's loss is a plain call. ``padded`` (variable-length
    sequences): the padded steps of bce and regression targets become NaN (integer ones arrive as -100),
    which the masked losses (:func:`build_loss` with ``masked``) and the metrics skip."""
    import torch

    if head.kind == "class":
        return y.to(torch.long)
    out = y.to(dtype)
    if padded and not torch.is_floating_point(y):
        out[y == IGNORE] = float("nan")
    return out.reshape(y.shape[0], *head.out_shape)


def build_loss(head: Head, spec: "LossSpec | None", device: "torch.device", masked: bool = False) -> LossFn:
    """The loss as one closure ``(output, target) -> scalar`` specialised for the head (no branching per step).

    ``masked`` (variable-length sequences): a bce or regression loss averages over the valid target
    elements only (NaN targets mark padded steps, see :func:`prepare_targets`), Keras' masked mean
    ``sum(loss · mask) / sum(mask)`` over the batch; cross_entropy skips -100 targets either way."""
    if masked and head.loss != "cross_entropy":
        return _masked_mean(_elementwise_loss(head.loss, spec, device))
    return _plain_loss(head, spec, device)


def _masked_mean(fn: Callable[..., "torch.Tensor"]) -> LossFn:
    """``fn(out, y, reduction="none")`` averaged over the elements whose target is not NaN (0 when none is)."""
    import torch

    def loss(out: "torch.Tensor", y: "torch.Tensor") -> "torch.Tensor":
        valid = ~torch.isnan(y)
        per = fn(out, y.nan_to_num(0.0), reduction="none")  # same shape as y; padded elements are dropped below
        return (per * valid).sum() / valid.sum().clamp(min=1)

    return loss


def _elementwise_loss(name: str, spec: "LossSpec | None", device: "torch.device") -> Callable[..., "torch.Tensor"]:
    """The bce / mse / mae / huber function with its options, taking torch's ``reduction`` keyword."""
    import torch
    import torch.nn.functional as F

    if name == "bce":
        pos = torch.tensor(spec.pos_weight, device=device) if spec and spec.pos_weight else None
        return lambda out, y, reduction: F.binary_cross_entropy_with_logits(out, y, pos_weight=pos, reduction=reduction)
    if name == "mse":
        return F.mse_loss
    if name == "mae":
        return F.l1_loss
    delta = spec.delta if spec else 1.0
    return lambda out, y, reduction: F.huber_loss(out, y, delta=delta, reduction=reduction)


def _plain_loss(head: Head, spec: "LossSpec | None", device: "torch.device") -> LossFn:
    """The loss averaged over every element (cross_entropy: over the targets that are not -100)."""
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
    if name in ("mse", "mae") or name == "bce" and not (spec and spec.pos_weight):
        return {"mse": F.mse_loss, "mae": F.l1_loss, "bce": F.binary_cross_entropy_with_logits}[name]
    fn = _elementwise_loss(name, spec, device)
    return lambda out, y: fn(out, y, reduction="mean")


def check_finite_or_raise(losses: "torch.Tensor", epoch: int, first_step: int, steps_per_epoch: int) -> None:
    """Raise a TrainingError naming the first non-finite loss in ``losses`` (step numbers are 1-based)."""
    import torch

    bad = (~torch.isfinite(losses)).nonzero()
    if bad.numel():
        i = int(bad[0, 0])
        step = first_step + i + 1
        value = float(losses[i])
        raise TrainingError(
            f"the loss became {value} at epoch {epoch}, step {step} of {steps_per_epoch} "
            f"(global step {(epoch - 1) * steps_per_epoch + step}); training stopped",
            hint="lower optimizer.lr, add grad_clip (e.g. grad_clip: 1.0), check the data for extreme values, "
                 "or use precision: fp32; checkpoints/last still holds the last good epoch",
        )
