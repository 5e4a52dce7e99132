"""Targets: encode labels for the task and check them against the model's output, before training.

- classification kinds: text labels → ids in sorted order (class_names); whole numbers are used as
  ids directly and must be 0..num_classes-1 (negative or out of range is an error, not remapped);
- regression: float32, finite;
- sequence: (N, T) integer classes per step, or (N, T, k) floats;
- language_model: ids already made by the text reader.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import DataError
from .fit import ModelFacts
from .raw import RawData, check_finite

CLASS_TASKS = ("classification", "sequence_classification", "sequence", "language_model")


def _row_of(raw: RawData, flat_index: int) -> str:
    per = int(np.prod(raw.y.shape[1:])) if raw.y is not None and raw.y.ndim > 1 else 1
    return raw.row(flat_index // per)


def class_ids(raw: RawData, class_names: list[str] | None, num_classes: int | None) -> np.ndarray:
    """Labels of ``raw`` as int64 ids. Text labels map through ``class_names``; numbers are checked."""
    y = raw.y
    assert y is not None
    if y.dtype.kind in "US":
        assert class_names is not None
        index = {c: i for i, c in enumerate(class_names)}
        flat = y.reshape(-1)
        unknown = [j for j, v in enumerate(flat) if v not in index]
        if unknown:
            v = flat[unknown[0]]
            near = [c for c in class_names if c.lower() == str(v).lower()]
            raise DataError(
                f"{raw.where}: label {str(v)!r} at {_row_of(raw, unknown[0])} is not one of the training classes "
                f"({', '.join(class_names[:12])}{' …' if len(class_names) > 12 else ''})",
                hint=(f"did you mean '{near[0]}'? " if near else "") + "every label must appear in the training data",
            )
        return np.array([index[v] for v in flat], dtype=np.int64).reshape(y.shape)
    if y.dtype.kind == "f":
        check_finite(y.reshape(len(y), -1), raw.where, "the labels", rows=raw)
        frac = np.flatnonzero(y.reshape(-1) != np.round(y.reshape(-1)))
        if frac.size:
            raise DataError(
                f"{raw.where}: class label {y.reshape(-1)[frac[0]]} at {_row_of(raw, int(frac[0]))} is not a whole number",
                hint="classification labels are whole numbers 0..K-1 or text; for a numeric target set data.task: regression",
            )
    elif y.dtype.kind not in "biu":
        raise DataError(f"{raw.where}: labels of dtype {y.dtype} are not supported", hint="use integers 0..K-1 or text labels")
    ids = y.astype(np.int64)
    if ids.size and ids.min() < 0:
        j = int(np.argmin(ids.reshape(-1)))
        raise DataError(
            f"{raw.where}: negative class label {int(ids.reshape(-1)[j])} at {_row_of(raw, j)}",
            hint="class labels must be 0..K-1: shift them (e.g. y - y.min()) or use text class names",
        )
    if num_classes is not None and ids.size and ids.max() >= num_classes:
        j = int(np.argmax(ids.reshape(-1)))
        raise DataError(
            f"{raw.where}: class label {int(ids.reshape(-1)[j])} at {_row_of(raw, j)} is out of range for "
            f"num_classes {num_classes} (labels must be 0..{num_classes - 1})",
            hint=f"raise data.num_classes to at least {int(ids.max()) + 1} (and the output layer's units), or fix the label",
        )
    return ids


def encode_targets(raws: list[RawData], task: str, given_classes: int | None,
                   source_names: list[str] | None) -> tuple[list[np.ndarray], int | None, list[str] | None]:
    """Encode the targets of the main source (first) and its val/test files alike.
    Returns the encoded arrays, num_classes and class_names."""
    main = raws[0]
    if task == "regression" or (task == "sequence" and main.y is not None and main.y.dtype.kind == "f"):
        out = []
        for raw in raws:
            assert raw.y is not None
            if raw.y.dtype.kind in "US":
                try:
                    raw.y = raw.y.astype(np.float64)
                except ValueError:
                    bad = next(i for i, v in enumerate(raw.y.reshape(-1)) if not _is_number(v))
                    raise DataError(f"{raw.where}: task {task} needs numeric targets, but {_row_of(raw, bad)} has "
                                    f"{str(raw.y.reshape(-1)[bad])!r}",
                                    hint="use numbers, or set data.task: classification for class labels") from None
            if task == "sequence" and raw.y.ndim < 3:
                raise DataError(f"{raw.where}: per-step float targets must be shaped (N, T, k), got {raw.y.shape}",
                                hint="add a trailing axis: y[..., None]")
            check_finite(raw.y.reshape(len(raw.y), -1), raw.where, "the targets", rows=raw)
            out.append(raw.y.astype(np.float32))
        return out, None, None
    # classes
    if task == "sequence":
        for raw in raws:
            if raw.y is not None and raw.y.ndim != 2:
                raise DataError(f"{raw.where}: task sequence with class targets needs y shaped (N, T), got {raw.y.shape}",
                                hint="give one class id per time step")
    elif task in ("classification", "sequence_classification"):
        for raw in raws:
            if raw.y is not None and raw.y.ndim != 1:
                raise DataError(f"{raw.where}: task {task} needs one label per sample, y shaped (N,), got {raw.y.shape}",
                                hint="for one label per time step set data.task: sequence")
    names = source_names
    if main.y is not None and main.y.dtype.kind in "US":
        names = sorted({str(v) for v in main.y.reshape(-1)})
        if given_classes is not None and given_classes < len(names):
            raise DataError(f"{main.where}: the labels name {len(names)} classes but data.num_classes is {given_classes}",
                            hint=f"set data.num_classes: {len(names)} or remove it")
    ids = [class_ids(r, names, given_classes) for r in raws]
    k = given_classes or max([len(names or [])] + [int(a.max()) + 1 for a in ids if a.size])
    if names is None or len(names) < k:
        names = (names or []) + [str(i) for i in range(len(names or []), k)]
    return ids, k, names


def _is_number(v: object) -> bool:
    try:
        float(str(v))
    except ValueError:
        return False
    return True


def check_output(facts: ModelFacts, task: str, num_classes: int | None, y: np.ndarray, where: str,
                 notes: list[str]) -> int | None:
    """Check the targets against the model's output shape; returns the num_classes to report."""
    out = facts.output
    if out is None:
        return num_classes
    if task in CLASS_TASKS and num_classes is not None:  # (float per-step targets fall through)
        units = out[-1] if out else 1
        steps, want_steps = math.prod(out[:-1]), math.prod(y.shape[1:])
        if steps != want_steps:
            per = "one label per sample" if want_steps == 1 else f"one label per step ({want_steps} steps)"
            raise DataError(
                f"{where}: the targets have {per} but the model's output shape is {list(out)}",
                hint="end the model with one vector per sample (e.g. return_sequences: false, flatten or pooling)"
                if want_steps == 1 else f"make the model output [{want_steps}, classes] (e.g. return_sequences: true)",
            )
        if units == 1 and num_classes == 2 and task != "language_model":
            notes.append("binary labels with a single output unit: train with a sigmoid/BCE loss")
            return num_classes
        if units < num_classes:
            need = (f"the text has {num_classes} distinct characters" if task == "language_model"
                    else f"the labels need {num_classes} classes (0..{num_classes - 1})")
            raise DataError(
                f"{where}: {need} but the model's output has "
                f"{units} unit{'s' if units != 1 else ''} (output shape {list(out)})",
                hint=f"set the last layer's units: {num_classes}",
            )
        if units > num_classes:
            notes.append(f"the model outputs {units} classes; the data uses {num_classes} (extra classes never appear)")
            return units
        return num_classes
    target = tuple(y.shape[1:])
    if math.prod(target) != math.prod(out):
        k = math.prod(target)
        if len(out) > max(len(target), 1) and out[-1] == (target[-1] if target else 1):
            hint = "the output still has a time/position axis: end the model with one vector per sample " \
                   "(return_sequences: false, flatten or pooling)"
        else:
            hint = f"make the model output {k} value(s) per sample" + (f" (last layer units: {k})" if len(target) <= 1 else f", shaped {list(target)}")
        raise DataError(
            f"{where}: each target has shape {list(target) or '[] (one number)'} but the model's output is {list(out)}",
            hint=hint,
        )
    return num_classes
