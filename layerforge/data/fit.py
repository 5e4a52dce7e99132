"""Fitting data to the model: what the model expects (input shapes, which inputs are integer token
ids, output shape) and how a source's arrays are matched to it, before any training starts.

Matching one input, per sample (no batch axis):

1. an input read by an integer-id layer (``embedding``) gets int64 ids; values must be whole numbers
   in the layer's id range (``LayerSpec.id_range``: [0, input_dim) for an embedding);
2. token ids (text, copy task) meet a model input ``[T, V]`` with V = vocabulary size → one-hot floats;
3. the shapes are equal → float32 as is;
4. only the element count agrees (digits 1×8×8 for an MLP with ``input_shape: [64]``) → reshaped, and
   a note says so;
5. anything else → DataError naming both shapes and the fix.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError
from .fileio import check_memory
from .raw import RawData

Shape = tuple[int, ...]


@dataclass
class ModelFacts:
    """What the data must fit, per sample: the input shapes, the inputs that hold integer ids (with their
    valid half-open range) and the single output's shape (None when there are several). Made from the
    model's graph by the front door (:func:`layerforge.build.data_facts`); data never plans a graph."""

    inputs: dict[str, Shape]
    integer: dict[str, tuple[int, int]] = field(default_factory=dict)
    output: Shape | None = None

    def input_label(self, name: str) -> str:
        return "model.input_shape" if len(self.inputs) == 1 else f"model.input_shape.{name}"


def _mismatch(raw: RawData, name: str, got: Shape, want: Shape, facts: ModelFacts, hint_extra: str = "") -> DataError:
    label = facts.input_label(name)
    hint = f"set {label}: {list(got)} to match the data"
    if raw.ids and raw.vocab_size:
        hint += f", or [{', '.join(map(str, got))}, {raw.vocab_size}] to one-hot encode the {raw.vocab_size}-symbol vocabulary"
    return DataError(f"{raw.where}: each sample has shape {list(got)} but {label} is {list(want)}", hint=hint + hint_extra)


def fit_input(arr: np.ndarray, name: str, raw: RawData, facts: ModelFacts, notes: list[str]) -> tuple[np.ndarray, str]:
    """Match one input array (N, *sample) to the model; returns the array and its encoding
    ("ids", "onehot", "reshape" or "float")."""
    want = facts.inputs[name]
    got = tuple(arr.shape[1:])
    if name in facts.integer:
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                raise DataError(f"{raw.where}: {facts.input_label(name)} feeds an embedding, which needs whole-number "
                                "token ids, but the data holds fractional values",
                                hint="give integer ids 0..vocab-1, or remove the embedding layer for real-valued inputs")
        elif arr.dtype.kind not in "biu":
            raise DataError(f"{raw.where}: token ids must be integers, got dtype {arr.dtype}", hint="save the ids as int64")
        low, high = facts.integer[name]
        if arr.size and arr.min() < low:
            what = "negative token id" if low == 0 else f"token id below {low}:"
            raise DataError(f"{raw.where}: {what} {int(arr.min())}",
                            hint=f"token ids must be 0..vocab-1 (here {low}..{high - 1})")
        if arr.size and arr.max() >= high:
            raise DataError(f"{raw.where}: token id {int(arr.max())} is out of range: the layer reading "
                            f"{facts.input_label(name)} takes ids {low}..{high - 1} (for an embedding: input_dim {high})",
                            hint=f"set the embedding's input_dim to at least {int(arr.max()) + 1}"
                            + (f" (the vocabulary has {raw.vocab_size} symbols)" if raw.vocab_size else ""))
        arr = arr.astype(np.int64)
        kind = "ids"
    elif raw.ids and raw.vocab_size and want == (*got, raw.vocab_size):
        check_memory(arr.size * raw.vocab_size * 4, raw.where, f"one-hot encoding {arr.size:,} ids over "
                     f"{raw.vocab_size:,} symbols", "use an embedding layer instead of one-hot inputs")
        eye = np.eye(raw.vocab_size, dtype=np.float32)
        notes.append(f"one-hot encoded {facts.input_label(name)} ids over {raw.vocab_size} symbols: {list(got)} → {list(want)}")
        return eye[arr], "onehot"  # (N, T, V)
    else:
        arr = arr.astype(np.float32, copy=False)
        kind = "float"
    if got != want:
        if math.prod(got) != math.prod(want):
            raise _mismatch(raw, name, got, want, facts)
        notes.append(f"reshaped {facts.input_label(name)} samples from {list(got)} to {list(want)} (same element count)")
        arr = arr.reshape(len(arr), *want)
        kind = "reshape" if kind == "float" else kind
    return np.ascontiguousarray(arr), kind


def match_names(raw: RawData, facts: ModelFacts) -> None:
    """Give ``raw.x`` the model's input names: a one-input source feeds a one-input model; several
    inputs must be named alike (an NPZ archive with one array per model input)."""
    names = list(facts.inputs)
    if len(names) == 1 and len(raw.x) == 1:
        raw.x = {names[0]: next(iter(raw.x.values()))}
        return
    missing = [n for n in names if n not in raw.x]
    if missing:
        raise DataError(
            f"{raw.where}: the model has {len(names)} inputs ({', '.join(names)}) but this source gives "
            + (f"one input" if len(raw.x) == 1 else f"the arrays {', '.join(raw.x)}"),
            hint="save an .npz archive with one array per model input name, plus y",
        )
    raw.x = {n: raw.x[n] for n in names}
