"""Fitting data to the model: what the model expects (input shapes, which inputs are integer token
ids, output shape) and how a source's arrays are matched to it, before any training starts.

Matching one input, per sample (no batch axis):

1. an input read by an integer-id layer (``embedding``) gets int64 ids; values must be whole numbers
   ≥ 0 and below the layer's ``input_dim``;
2. token ids (text, copy task) meet a model input ``[T, V]`` with V = vocabulary size → one-hot floats;
3. the shapes are equal → float32 as is;
4. only the element count agrees (digits 1×8×8 for an MLP with ``input_shape: [64]``) → reshaped, and
   a note says so;
5. anything else → DataError naming both shapes and the fix.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError, Issue
from .raw import RawData

Shape = tuple[int, ...]


@dataclass
class ModelFacts:
    """What the data must fit: per-sample input shapes, integer inputs (→ id limit), output shape."""

    inputs: dict[str, Shape]
    integer: dict[str, int | None] = field(default_factory=dict)
    output: Shape | None = None  # the single output's per-sample shape; None when unknown / several

    @classmethod
    def from_spec(cls, spec: Any) -> "ModelFacts":
        inputs = spec.model.input_shapes()
        facts = cls(inputs)
        layers = [l for l in spec.model.layers if hasattr(l, "output_shape")]  # validated LayerSpecs
        if len(layers) != len(spec.model.layers):
            return facts
        first = next(iter(inputs))
        for i, layer in enumerate(layers):
            refs = layer.inputs if layer.inputs is not None else ([first] if i == 0 else [])
            if getattr(type(layer), "integer_input", False):
                limit = next((getattr(layer, a) for a in ("input_dim", "num_embeddings", "vocab_size")
                              if isinstance(getattr(layer, a, None), int)), None)
                for r in refs:
                    if r in inputs:
                        facts.integer[r] = limit
        from ..graph import plan

        graph, errs = plan(inputs, layers, spec.model.output_names(), lambda p, m, h, l: Issue(m, tuple(p), h))
        if graph is not None and not errs and len(graph.outputs) == 1:
            facts.output = tuple(graph.output_shapes[0])
        return facts

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
        if arr.size and arr.min() < 0:
            raise DataError(f"{raw.where}: negative token id {int(arr.min())}", hint="token ids must be 0..vocab-1")
        limit = facts.integer[name]
        if limit is not None and arr.size and arr.max() >= limit:
            raise DataError(f"{raw.where}: token id {int(arr.max())} is out of range for the embedding's input_dim {limit}",
                            hint=f"set the embedding's input_dim to at least {int(arr.max()) + 1}"
                            + (f" (the vocabulary has {raw.vocab_size} symbols)" if raw.vocab_size else ""))
        arr = arr.astype(np.int64)
        kind = "ids"
    elif raw.ids and raw.vocab_size and want == (*got, raw.vocab_size):
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
