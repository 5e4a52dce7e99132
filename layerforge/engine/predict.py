"""Prediction: apply a trained run (its saved transform, then its model) to new inputs; write CSV/NPY/NPZ.

Classes come out as an index (and name), with softmax/sigmoid probabilities on request; real targets as
values. Per-step outputs (sequence tasks, language models) give one prediction per step.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .evaluate import head_of, inference_speed, load_trained
from .rundir import DATA

if TYPE_CHECKING:
    import numpy as np
    import torch


@dataclass
class PredictResult:
    kind: str  # class | binary | real
    predictions: "np.ndarray"  # (N,) or (N, T) class ids; (N, *out) values
    probabilities: "np.ndarray | None"  # (N, C) / (N, T, C) softmax, (N, ...) sigmoid
    class_names: list[str] | None
    row_names: list[str]
    checkpoint: str
    output: Path | None = None
    notes: list[str] = field(default_factory=list)
    targets: "np.ndarray | None" = None  # the true labels/values, when the input file has them
    accuracy: float | None = None  # of class predictions against ``targets`` (padded steps not counted)
    scored: int | None = None  # how many predictions the accuracy counts
    lengths: "np.ndarray | None" = None  # per-step outputs of variable-length sequences: valid steps per row
    padding: str = "post"  # where those sequences' padding sits (the input's layout: post or pre)
    text_unit: str | None = None  # a text model's class ids are tokens: "character" or "word"

    def valid(self, arr: "np.ndarray", i: int) -> "np.ndarray":
        """Row ``i`` of a per-step array at its sequence's true length (the whole row without lengths)."""
        if self.lengths is None:
            return arr[i]
        n, t = int(self.lengths[i]), arr.shape[1]
        return arr[i, t - n:] if self.padding == "pre" else arr[i, :n]

    def _names(self, ids: "np.ndarray | None") -> list[Any] | None:
        if ids is None or self.kind == "real" or self.class_names is None or ids.ndim != 1:
            return None
        return [self.class_names[int(i)] if 0 <= int(i) < len(self.class_names) else str(int(i)) for i in ids]

    def predicted_names(self) -> list[Any] | None:
        """Class names of per-sample class predictions (None otherwise)."""
        return self._names(self.predictions)

    def target_names(self) -> list[Any] | None:
        """Class names of the input file's true labels (None without labels or names)."""
        return self._names(self.targets)

    def to_dict(self, probabilities: bool = False) -> dict[str, Any]:
        def rows(arr: "np.ndarray") -> list[Any]:  # per-step outputs of variable-length sequences: true lengths
            return arr.tolist() if self.lengths is None else [self.valid(arr, i).tolist() for i in range(len(arr))]

        out: dict[str, Any] = {"kind": self.kind, "checkpoint": self.checkpoint, "rows": self.row_names,
                               "predictions": rows(self.predictions), "output": str(self.output) if self.output else None}
        if self.lengths is not None:
            out["lengths"] = self.lengths.tolist()
        if (names := self.predicted_names()) is not None:
            out["predicted_names"] = names
        if self.targets is not None:
            out["targets"] = rows(self.targets)
            if (names := self.target_names()) is not None:
                out["target_names"] = names
            out["accuracy"] = self.accuracy
            out["scored"] = self.scored
        if probabilities and self.probabilities is not None:
            out["probabilities"] = rows(self.probabilities)
            out["class_names"] = self.class_names
        return out


def predict(run_dir: str | Path, inputs: Any, *, output: str | Path | None = None, probabilities: bool = False,
            checkpoint: str = "best", batch_size: int = 1024, device: str = "auto",
            plugins: list[str] | None = None, trust_plugins: bool = False) -> PredictResult:
    """Predict with a trained run. ``inputs``: a file (CSV, NPZ, NPY, text, images) or an array/tensor already
    shaped like the model's input (the saved transform is applied to either)."""
    import torch

    from ..build import data_facts
    from ..data import load_arrays, load_inputs
    from ..runtime import inference_context, laid_out, pinned, resolve_device, run_flags, seeded

    run, spec, graph, model, which, _epoch = load_trained(run_dir, checkpoint, plugins, trust_plugins=trust_plugins)
    dev = resolve_device(device)
    speed = inference_speed(spec, model, dev)
    info = run.read_json(DATA)
    meta = info.get("meta", {})
    state = run.load_transform()
    notes: list[str] = []
    targets = lengths = None
    padding = "post"
    if isinstance(inputs, (str, Path)):
        x, finfo = load_inputs(Path(inputs), data_facts(graph), state, meta)
        rows, notes = list(finfo["row_names"]), list(finfo.get("notes", []))
        targets = finfo["y"].numpy() if finfo.get("y") is not None else None
        lengths, padding = finfo.get("lengths"), finfo.get("padding", "post")
    else:
        x, n = load_arrays(inputs, data_facts(graph), state, meta)
        rows = [f"sample {i}" for i in range(n)]
    head = head_of(run)
    outs = []
    multi = isinstance(x, dict)
    n = len(rows)
    # Inputs stay on the host and go to the device batch by batch (page-locked and without waiting on CUDA).
    x = {k: pinned(laid_out(v, speed), speed) for k, v in x.items()} if multi else pinned(laid_out(x, speed), speed)
    copy = {"non_blocking": speed.pin_memory}
    # seeded: rate coding draws the same spikes every time
    with run_flags(speed, None, spec.train.deterministic), inference_context(speed.inference_mode), \
            seeded(spec.seed, dev):
        for i in range(0, n, batch_size):
            xb = {k: v[i:i + batch_size].to(dev, **copy) for k, v in x.items()} if multi else x[i:i + batch_size].to(dev, **copy)
            outs.append((model(**xb) if multi else model(xb)).float().cpu())
    out = torch.cat(outs) if outs else torch.zeros(0, *head.out_shape)
    probs = None
    if head.kind == "class":
        pred = out.argmax(-1)
        if probabilities:
            probs = torch.softmax(out, -1).numpy()
    elif head.kind == "binary":
        p = torch.sigmoid(out)
        pred = (p > 0.5).long()
        if pred.ndim == 2 and pred.shape[1] == 1:
            pred, p = pred[:, 0], p[:, 0]
        if probabilities:
            probs = p.numpy()
    else:
        pred = out
    class_names = info.get("class_names") or (meta.get("class_names") if isinstance(meta, dict) else None)
    if head.kind == "binary" and not class_names:
        class_names = ["0", "1"]
    result = PredictResult(head.kind, pred.numpy(), probs, class_names, rows, which, notes=notes)
    if meta.get("task") == "language_model" and meta.get("vocab"):
        result.text_unit = "word" if meta.get("tokenizer") == "word" else "character"
    per_step = (lengths is not None and len(head.out_shape) >= 2 and not multi and x.dim() >= 2
                and head.out_shape[0] == x.shape[1])  # one output per input step
    if per_step:  # padded steps carry no prediction: -1 (classes) or NaN, and the rows know their lengths
        result.lengths, result.padding = lengths.numpy(), padding
        _blank_padding(result)
    if targets is not None:
        result.targets = targets.reshape(result.predictions.shape) if head.kind != "real" else targets
        if head.kind != "real":
            result.accuracy, result.scored = scored_accuracy(head, out, targets, lengths, padding, str(meta.get("task", "")))
    if output is not None:
        result.output = write_predictions(result, Path(output), probabilities)
    return result


def scored_accuracy(head: Any, out: "torch.Tensor", targets: "np.ndarray", lengths: "torch.Tensor | None",
                    padding: str, task: str) -> tuple[float, int]:
    """The accuracy of ``out`` against ``targets`` the way ``evaluate`` scores it (the same EpochStats),
    so the padded steps of variable-length sequences are not counted; and how many targets it counts."""
    import torch

    from ..data.ragged import mask_step_targets
    from .losses import prepare_targets, valid_targets
    from .metrics import EpochStats

    y = targets if lengths is None else mask_step_targets(targets, lengths.numpy(), task, padding)
    y = prepare_targets(head, torch.from_numpy(y), torch.float32, padded=lengths is not None)
    stats = EpochStats(head, ["accuracy"], len(y), torch.device("cpu"), loss_is_nll=False)
    stats.update(out, y, torch.zeros(()))
    return stats.compute()["accuracy"], int(valid_targets(y).numel())


def _blank_padding(result: PredictResult) -> None:
    """Per-step outputs of variable-length sequences: -1 (class ids) or NaN (values, probabilities) at the
    padded steps, which are no predictions (the model's raw outputs there mean nothing)."""
    import numpy as np

    from ..data.ragged import valid_steps

    assert result.lengths is not None
    pad = ~valid_steps(result.lengths, result.predictions.shape[1], result.padding)  # (N, T)
    result.predictions = result.predictions.copy()
    result.predictions[pad] = np.nan if result.kind == "real" else -1
    if result.probabilities is not None:
        result.probabilities = result.probabilities.copy()
        result.probabilities[pad] = np.nan


def write_predictions(result: PredictResult, path: Path, probabilities: bool) -> Path:
    """CSV (one row per sample: ``row``, ``predicted`` (class id or value), ``predicted_name``, and
    ``true``/``true_name`` when the input has labels, then the probabilities), NPY (predictions, or
    probabilities when asked) or NPZ (predictions, probabilities, targets).

    The folder must exist and be writable (a clear error otherwise); the file is written beside its final
    name and renamed into place, so a failed write leaves any earlier file whole. Text cells of a CSV
    (row names, class names) that a spreadsheet would run as a formula are escaped (see :func:`csv_text`)."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv", ".txt", ".npy", ".npz"):
        raise UsageError(f"unknown output format '{path.suffix}' for {path}", hint="use .csv, .npy or .npz")
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"cannot write {path}: the folder {folder} does not exist", hint=f"create it first (mkdir -p {folder})")
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a folder", hint="give a file name, e.g. predictions.csv")
    tmp = folder / f".{path.name}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            _write(result, f, suffix, probabilities)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {e.strerror or e}",
                         hint="choose a folder you can write to (check its permissions and free space)") from None
    return path


def _write(result: PredictResult, f: Any, suffix: str, probabilities: bool) -> None:
    import numpy as np

    if suffix == ".npy":
        arr = result.probabilities if probabilities and result.probabilities is not None else result.predictions
        np.save(f, arr)
        return
    if suffix == ".npz":
        arrays = {"predictions": result.predictions}
        if result.probabilities is not None:
            arrays["probabilities"] = result.probabilities
        if result.targets is not None:
            arrays["targets"] = result.targets
        if result.lengths is not None:
            arrays["lengths"] = result.lengths
        np.savez(f, **arrays)
        return
    if result.lengths is not None:
        _write_ragged_csv(result, f, suffix, probabilities)
        return
    pred = result.predictions
    flat = pred.reshape(len(pred), -1)
    header = ["row"] + (["predicted"] if flat.shape[1] == 1 else [f"predicted_{j}" for j in range(flat.shape[1])])
    names, true_names = result.predicted_names(), result.target_names()
    if names is not None:
        header.append("predicted_name")
    true = result.targets.reshape(len(pred), -1) if result.targets is not None else None
    if true is not None:
        header += ["true"] if true.shape[1] == 1 else [f"true_{j}" for j in range(true.shape[1])]
        if true_names is not None:
            header.append("true_name")
    probs = result.probabilities if probabilities else None
    pflat = None
    if probs is not None:
        if result.kind == "binary":
            pflat = probs.reshape(len(probs), -1)
            header += ["probability"] if pflat.shape[1] == 1 else [f"probability_{j}" for j in range(pflat.shape[1])]
        else:
            cnames = result.class_names or [str(i) for i in range(probs.shape[-1])]
            pflat = probs.reshape(len(probs), -1)
            steps = pflat.shape[1] // probs.shape[-1]
            header += [f"p_{n}" for n in cnames] if steps == 1 else [f"p{t}_{n}" for t in range(steps) for n in cnames]
    text = io.TextIOWrapper(f, encoding="utf-8", newline="")
    w = csv.writer(text, delimiter="\t" if suffix == ".tsv" else ",")
    w.writerow([csv_text(h) for h in header])
    for i, row in enumerate(result.row_names):
        vals: list[Any] = [csv_text(row), *(_fmt(v) for v in flat[i])]
        if names is not None:
            vals.append(csv_text(names[i]))
        if true is not None:
            vals += [_fmt(v) for v in true[i]]
            if true_names is not None:
                vals.append(csv_text(true_names[i]))
        if pflat is not None:
            vals += [f"{v:.6g}" for v in pflat[i]]
        w.writerow(vals)
    text.flush()
    text.detach()


def _write_ragged_csv(result: PredictResult, f: Any, suffix: str, probabilities: bool) -> None:
    """Per-step outputs of variable-length sequences: one row per sequence, each column holding the valid
    steps separated by spaces (the input's ``sequence_column`` format), at the sequence's true length:
    ``predicted`` (or ``predicted_j`` per output value), ``true`` likewise, ``p_<class>`` probabilities."""
    def columns(name: str, arr: "np.ndarray", labels: list[str] | None = None) -> list[tuple[str, Any]]:
        per = arr.reshape(len(arr), arr.shape[1], -1)  # (N, T, k)
        names = labels or ([name] if per.shape[2] == 1 else [f"{name}_{j}" for j in range(per.shape[2])])
        return [(n, per[..., j]) for j, n in enumerate(names)]

    cols = columns("predicted", result.predictions)
    if result.targets is not None:
        cols += columns("true", result.targets)
    if probabilities and result.probabilities is not None:
        k = result.probabilities.shape[-1] if result.kind == "class" else 1
        names = [f"p_{n}" for n in (result.class_names or range(k))] if result.kind == "class" else ["probability"]
        cols += columns("p", result.probabilities, names)
    text = io.TextIOWrapper(f, encoding="utf-8", newline="")
    w = csv.writer(text, delimiter="\t" if suffix == ".tsv" else ",")
    w.writerow(["row", *(csv_text(n) for n, _ in cols)])
    for i, row in enumerate(result.row_names):
        cells = []
        for _, arr in cols:
            steps = result.valid(arr, i)
            cells.append(" ".join(_fmt(v) for v in steps))
        w.writerow([csv_text(row), *cells])
    text.flush()
    text.detach()


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: Any) -> str:
    """A text cell made safe for spreadsheets (OWASP's CSV-injection rule): text that starts with = + - @,
    a tab or a carriage return gets a leading single quote, so Excel/LibreOffice show it instead of running
    it as a formula. A number stays a number: ``-0.5`` and ``-3`` (a class named -3) are not touched."""
    text = str(value)
    if text.startswith(_FORMULA_START):
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


def _fmt(v: Any) -> str:
    f = float(v)
    return str(int(f)) if f.is_integer() and abs(f) < 1e15 and v.dtype.kind in "iub" else f"{f:.6g}"
