"""Inputs for ``layerforge predict`` / ``evaluate --data``: read a file the way the training data was
read (same feature columns, vocabulary, image size), fit it to the model and apply the SAVED transform.

Accepted files: a CSV table (the training feature columns; the target column is optional), an .npz
archive (``x``, optional ``y``), an .npy array (a batch, or one sample shaped exactly like
``model.input_shape``), a text file (split into windows of the training ``seq_len``), one image, or a
folder of images (flat, or one sub-folder per class, which then gives labels).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError
from .bundle import Inputs, Split
from .fit import ModelFacts, fit_input, match_names
from .images import IMAGE_EXTS, list_images, load_images, read_image_folder
from .labels import CLASS_TASKS, class_ids
from .ragged import attach_npz_lengths, mask_step_targets, read_sequence_csv, truncated_note
from .raw import RawData, check_finite
from .readers import detect_format, read_csv, read_npy, read_npz, read_text, require_file
from .text import Tokenizer, input_windows, windows
from .transforms import transform_from_state

if TYPE_CHECKING:
    import torch


def _read_images(path: Path, where: str, meta: dict[str, Any]) -> RawData:
    size = tuple(meta["image_size"]) if meta.get("image_size") else None
    channels = meta.get("channels")
    if path.is_file():
        x, _, _ = load_images([path], None, size, channels, where)  # type: ignore[arg-type]
        raw = RawData(x={"input": x}, y=None, where=where)
        raw.meta["files"] = [path.name]
        return raw
    if list_images(path):  # a flat folder: unlabelled images
        files = list_images(path)
        x, _, _ = load_images(files, path, size, channels, where)  # type: ignore[arg-type]
        raw = RawData(x={"input": x}, y=None, where=where)
        raw.meta["files"] = [f.name for f in files]
        return raw
    return read_image_folder(path, where, path, size, channels)  # type: ignore[arg-type]


def _read_text(path: Path, where: str, meta: dict[str, Any], targets: bool) -> RawData:
    """Windows of the training seq_len, tokenised as in training (characters or words, the saved vocabulary).
    For evaluation (``targets``) non-overlapping (x, y) windows, the tail that fills no window noted; for
    prediction windows covering every token, the last one overlapping its neighbour when needed (noted),
    named by the tokens they hold."""
    vocab, seq_len = meta.get("vocab"), meta.get("seq_len")
    if not vocab or not seq_len:
        raise DataError(f"{where}: this model was not trained on text, so a text file cannot be its input",
                        hint="give the input in the format the model was trained on (CSV, NPZ, NPY or images)")
    tokenizer = Tokenizer.from_meta(meta)
    unit = tokenizer.unit
    ids = tokenizer.encode(read_text(path, where), where)
    notes: list[str] = []
    if targets:
        x, y = windows(ids, seq_len, where, unit)
        starts = [i * seq_len for i in range(len(x))]
        tail = len(ids) - 1 - x.size
        if tail:
            notes.append(f"the last {tail} {unit}s are not scored: they do not fill a window of {seq_len} "
                         "(+1 for the target)")
    else:
        (x, starts), y = input_windows(ids, seq_len, where, unit), None
        if len(ids) % seq_len:
            notes.append(f"the last window ({unit}s {starts[-1]}–{len(ids) - 1}) overlaps the one before by "
                         f"{seq_len - len(ids) % seq_len} {unit}s, so that the text's last "
                         f"{len(ids) % seq_len} {unit}s are predicted too")
    raw = RawData(x={"input": x}, y=y, where=where, ids=True, vocab_size=len(vocab))
    raw.meta["notes"] = notes
    short = "chars" if unit == "character" else "words"
    raw.meta["rows"] = [f"{short} {s}–{s + seq_len - 1}" for s in starts]
    return raw


def read_input_file(path: Path, facts: ModelFacts, meta: dict[str, Any],
                    targets: bool = False) -> tuple[RawData, str]:
    """Read ``path`` in its own format, using what the training data's ``meta`` recorded (``targets``: the
    file is read for evaluation, so text is cut into (input, target) windows)."""
    where = str(path)
    require_file(path, where, "input file",
                 relative=f"a relative path starts from the current directory ({Path.cwd()})")
    fmt = "images" if path.suffix.lower() in IMAGE_EXTS else detect_format(path, where)
    inputs = list(facts.inputs)
    if fmt == "csv" and meta.get("sequence_column"):
        shape = next(iter(facts.inputs.values()))
        raw = read_sequence_csv(path, where, meta.get("target"), meta["sequence_column"], None, shape[0],
                                shape[1] if len(shape) == 2 else None, need_target=False,
                                padding=meta.get("padding", "post"),
                                tokenize=Tokenizer.from_meta(meta).tokenize_cells if meta.get("tokenizer") == "word" else None)
        if raw.meta.get("truncated"):
            raw.meta["notes"] = [truncated_note(raw.meta["truncated"], shape[0])]
    elif fmt == "csv":
        raw = read_csv(path, where, meta.get("target"), meta.get("features"), None, need_target=False)
    elif fmt == "npz":
        raw = read_npz(path, where, inputs, meta.get("target") if meta.get("source") == "npz" else None, need_target=False)
        if meta.get("lengths_array"):
            attach_npz_lengths(raw, path, where, meta["lengths_array"], meta.get("padding", "post"))
    elif fmt == "npy":
        raw = read_npy(path, where, None, None, need_target=False)
    elif fmt == "text":
        raw = _read_text(path, where, meta, targets)
    else:
        raw = _read_images(path, where, meta)
    return raw, fmt


def _encode_y(raw: RawData, meta: dict[str, Any], task: str, num_classes: int | None) -> np.ndarray | None:
    if raw.y is None:
        return None
    if task in CLASS_TASKS and not (task == "sequence" and meta.get("num_classes") is None):  # else real per-step values
        names = meta.get("class_names")
        if raw.y.dtype.kind in "US" and names is None:
            raise DataError(f"{raw.where}: text labels, but the model was trained on numeric classes",
                            hint="give the labels as class ids 0..K-1")
        return class_ids(raw, names, num_classes)
    y = raw.y
    if y.dtype.kind in "US":
        raise DataError(f"{raw.where}: task {task} needs numeric targets", hint="use numbers in the target column")
    check_finite(y.reshape(len(y), -1), raw.where, "the targets", rows=raw)
    return y.astype(np.float32)


def load_inputs(path: Path, facts: ModelFacts, transform_state: dict[str, Any] | None,
                meta: dict[str, Any], targets: bool = False) -> tuple[Inputs, dict[str, Any]]:
    """Read ``path`` for prediction by the model that ``facts`` describes (``targets``: for evaluation,
    text is cut into (input, target) windows); returns ``(x, info)``.

    ``x`` is a tensor (or a dict of tensors for a model with several inputs) with the saved transform
    applied. ``info`` holds ``file``, ``format``, ``num_samples``, ``row_names`` (how to find each sample:
    CSV line, image file, text window), ``y`` (encoded targets as a tensor when the file has them, else
    None) and ``notes`` (reshapes / encodings applied).
    """
    import torch

    path = Path(path)
    raw, fmt = read_input_file(path, facts, meta, targets)
    xs, fit_notes = _fit(raw, facts, transform_state, meta, one_sample=fmt in ("npy", "npz"))
    y = _encode_y(raw, meta, str(meta.get("task", "")), meta.get("num_classes"))
    notes: list[str] = [*raw.meta.get("notes", []), *fit_notes]
    n = len(raw)
    if "files" in raw.meta:
        rows = list(raw.meta["files"])
    elif fmt == "csv":
        rows = [f"line {i + 2}" for i in range(n)]
    elif fmt == "text":
        rows = list(raw.meta["rows"])
    else:
        rows = [f"sample {i}" for i in range(n)]
    lengths = None if raw.lengths is None else torch.from_numpy(raw.lengths)
    info = {"file": str(path), "format": fmt, "num_samples": n, "row_names": rows,
            "y": torch.from_numpy(y) if y is not None else None, "notes": notes, "lengths": lengths,
            "padding": raw.padding}
    return xs, info


def _fit(raw: RawData, facts: ModelFacts, transform_state: dict[str, Any] | None, meta: dict[str, Any],
         one_sample: bool) -> tuple[Inputs, list[str]]:
    """Inputs read from a file or given as arrays → tensors fitted to the model (names, shapes, ids, finite
    values, the training encoding), the saved transform applied. ``one_sample``: an array shaped exactly
    like one sample gets a batch axis."""
    import torch

    match_names(raw, facts)
    for name, arr in list(raw.x.items()):
        if tuple(arr.shape) == facts.inputs[name] and one_sample:
            raw.x[name] = arr[None]  # one sample without a batch axis
    if "onehot" in dict(meta.get("input_encoding") or {}).values() and meta.get("vocab_size"):
        raw.ids, raw.vocab_size = True, int(meta["vocab_size"])  # ids one-hot encoded as in training
    notes: list[str] = []
    for name in list(raw.x):
        if raw.x[name].ndim == 0:
            raise DataError(f"{raw.where}: {name} is a single number, not samples", hint="give an array (N, *input_shape)")
        raw.x[name], _ = fit_input(raw.x[name], name, raw, facts, notes)
        check_finite(raw.x[name], raw.where, "the inputs", raw.meta.get("features"), raw)
    x = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in raw.x.items()}
    xs: Inputs = next(iter(x.values())) if len(x) == 1 else x
    return transform_from_state(transform_state).apply(xs), notes


def load_arrays(inputs: Any, facts: ModelFacts, transform_state: dict[str, Any] | None,
                meta: dict[str, Any]) -> tuple[Inputs, int]:
    """Inputs given to ``predict`` in Python (an array, a tensor, nested lists, or a dict of them by input
    name), checked and fitted exactly like a file's: numbers only, the model's shapes (one sample may come
    without its batch axis), ids in range. Returns the inputs and the number of samples."""
    import torch

    def as_array(v: Any) -> np.ndarray:
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu().numpy()
        try:
            a = np.asarray(v)
        except (ValueError, TypeError) as e:
            raise DataError(f"the inputs cannot be read as one array ({e})",
                            hint="give an array shaped (N, *model.input_shape)") from None
        if a.dtype.kind not in "biuf":
            raise DataError(f"the inputs must be numbers, got dtype {a.dtype}", hint="give an array of numbers")
        return a

    x = {str(k): as_array(v) for k, v in inputs.items()} if isinstance(inputs, dict) else {"input": as_array(inputs)}
    raw = RawData(x=x, y=None, where="the inputs")
    xs, _ = _fit(raw, facts, transform_state, meta, one_sample=True)
    return xs, len(raw)


def load_split(path: Path, facts: ModelFacts, transform_state: dict[str, Any] | None, meta: dict[str, Any]) -> Split:
    """A labelled file as a :class:`Split` (for ``layerforge evaluate --data FILE``)."""
    import torch

    x, info = load_inputs(path, facts, transform_state, meta, targets=True)
    if info["y"] is None:
        what = f"target column '{meta['target']}'" if meta.get("target") else "targets (no array y)"
        raise DataError(f"{path}: has no {what}, so it cannot be evaluated",
                        hint="include the targets, or use `layerforge predict` for unlabelled inputs")
    y, lengths = info["y"], info["lengths"]
    if lengths is not None:  # padded per-step targets are not scored (data.ragged)
        y = torch.from_numpy(mask_step_targets(y.numpy(), lengths.numpy(), str(meta.get("task", "")), info["padding"]))
    return Split(x, y, lengths, padding=info["padding"])
