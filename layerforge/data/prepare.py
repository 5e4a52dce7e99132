"""``load_data``: from a validated spec to a :class:`~layerforge.data.bundle.DataBundle`, checking
everything that can be checked before training starts; ``check_data``: the same checks on the first
samples only, for ``layerforge validate``.

Order: read (or generate) → match input names → encode targets → fit inputs to the model's
``input_shape`` → check targets against the model's output → shuffle (seeded) and split → tensors →
fit the transform on the training split only and apply it to every split.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..errors import DataError, KeyPath
from .bundle import DataBundle, Split, Transform
from .fit import ModelFacts, fit_input, match_names
from .labels import check_output, encode_targets
from .ragged import mask_step_targets, truncated_note
from .raw import RawData, check_finite
from .synthetic import GENERATORS
from .sources import Sources, check_task, read_sources
from .splits import split_order, split_sizes  # noqa: F401 (split_sizes: part of this module's API)
from .transforms import Standardize

CHECK_ROWS = 256  # samples per file that check_data reads where a format allows reading part of it

if TYPE_CHECKING:
    import torch

    from ..spec.schema import Spec


def _tensors(raw: RawData, idx: np.ndarray | None = None) -> tuple[dict[str, "torch.Tensor"], "torch.Tensor"]:
    import torch

    pick = (lambda a: a) if idx is None else (lambda a: a[idx])
    x = {k: torch.from_numpy(np.ascontiguousarray(pick(v))) for k, v in raw.x.items()}
    assert raw.y is not None
    return x, torch.from_numpy(np.ascontiguousarray(pick(raw.y)))


def _lengths(raw: RawData, idx: np.ndarray | None) -> "torch.Tensor | None":
    """The split's sequence lengths as a tensor (variable-length sequences), else None."""
    import torch

    if raw.lengths is None:
        return None
    return torch.from_numpy(raw.lengths if idx is None else raw.lengths[idx])


@dataclass
class _Fitted:
    """A data block read and fitted to the model, before any split: what both load_data and check_data need."""

    src: Sources
    task: str
    raws: list[RawData]
    num_classes: int | None
    class_names: list[str] | None
    encodings: dict[str, str]
    notes: list[str]


def _read_and_fit(spec: "Spec", facts: ModelFacts, base: Path, limit: int | None = None) -> _Fitted:
    """Read (or generate), match input names, encode targets, fit each input to ``input_shape`` and the
    targets to the output. A DataError names the spec key it belongs to (``error.path``)."""
    ds = spec.data
    assert ds is not None
    src: Sources = read_sources(ds, spec.seed, base, facts, limit)
    main = src.main
    task = check_task(ds.task, src.tasks, main.where)
    raws = [r for r in (main, src.val, src.test) if r is not None]
    notes: list[str] = []
    for r in raws:
        _at(("model", "input_shape"), match_names, r, facts)
    ys, num_classes, class_names = _at(("data",), encode_targets, raws, task, ds.num_classes, main.class_names)
    for r, y in zip(raws, ys):
        r.y = y
    encodings: dict[str, str] = {}
    for r in raws:
        for name in list(r.x):
            r.x[name], encodings[name] = _at(("model", "input_shape"), fit_input, r.x[name], name, r, facts,
                                             notes if r is main else [])
            check_finite(r.x[name], r.where, "the inputs" if len(r.x) == 1 else f"input '{name}'", rows=r)
    num_classes = _at(("model", "outputs"), check_output, facts, task, num_classes, main.y, main.where, notes)
    if main.meta.get("truncated"):
        notes.append(truncated_note(main.meta["truncated"], next(iter(main.x.values())).shape[1]))
    for r in raws:
        if r.lengths is not None and r.y is not None:
            r.y = mask_step_targets(r.y, r.lengths, task, r.padding)  # padded steps: -100 / NaN, skipped by losses and metrics
    return _Fitted(src, task, raws, num_classes, class_names, encodings, notes)


def _at(path: KeyPath, fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn``; a DataError it raises without a spec key gets ``path``."""
    try:
        return fn(*args)
    except DataError as e:
        e.path = e.path or path
        raise


def check_data(spec: "Spec", facts: ModelFacts, base_dir: Path | None = None, limit: int = CHECK_ROWS) -> list[str]:
    """What ``validate`` checks of the data without loading all of it: the files exist, the named columns
    and arrays exist, the first ``limit`` samples fit ``model.input_shape`` and their targets fit the
    model's output. Raises a DataError whose ``path`` is the spec key to fix; returns the notes (reshapes,
    encodings) training would print."""
    if spec.data is None:
        return []
    return _read_and_fit(spec, facts, Path(base_dir) if base_dir is not None else spec.base_dir, limit).notes


def load_data(spec: "Spec", facts: ModelFacts, base_dir: Path | None = None) -> DataBundle:
    """Read, check and split the spec's ``data:`` section for the model described by ``facts``
    (:func:`layerforge.build.data_facts`). Relative paths start at ``base_dir``, else ``spec.base_dir``.
    Raises DataError naming the file and the fix."""
    ds = spec.data
    if ds is None:
        raise DataError("the spec has no data: section, so there is nothing to train on",
                        hint="add e.g.\n  data:\n    dataset: digits\n(docs/data.md lists every source)")
    fitted = _read_and_fit(spec, facts, Path(base_dir) if base_dir is not None else spec.base_dir)
    src, task, notes, encodings = fitted.src, fitted.task, fitted.notes, fitted.encodings
    num_classes, class_names = fitted.num_classes, fitted.class_names
    main = src.main
    where = main.where
    if num_classes is not None and class_names is not None and len(class_names) < num_classes:
        class_names = class_names + [str(i) for i in range(len(class_names), num_classes)]

    # Shuffle (seeded), cap, split. Text windows keep their order so no split leaks into another.
    n = len(main)
    shuffled = ds.shuffle and not src.contiguous
    order, parts = split_order(n, ds, spec.seed, src.contiguous, ds.dataset in GENERATORS, where)
    if len(order) < n:
        notes.append(f"using {len(order)} of {n} samples (data.num_samples)")

    single = len(facts.inputs) == 1
    splits: dict[str, tuple[dict[str, Any], Any] | None] = {}
    lengths: dict[str, Any] = {}
    for key, idx in parts.items():
        splits[key] = _tensors(main, idx) if len(idx) else None
        lengths[key] = _lengths(main, idx)
    for key, extra in (("val", src.val), ("test", src.test)):
        if extra is not None:
            splits[key] = _tensors(extra)
            lengths[key] = _lengths(extra, None)

    standardize = src.standardize if ds.standardize is None else ds.standardize
    if main.lengths is not None and ds.standardize is None:
        standardize = False  # statistics would count the padding, and padding must stay 0 for the mask
    transform: Transform = Transform()
    train_x, train_y = splits["train"]  # type: ignore[misc]
    if standardize:
        transform = Standardize().fit(next(iter(train_x.values())) if single else train_x)
        if not getattr(transform, "stats", None):
            transform = Transform()  # only integer inputs: nothing to standardise
    bundle_splits: dict[str, Split | None] = {}
    for key, pair in splits.items():
        if pair is None:
            bundle_splits[key] = None
            continue
        x, y = pair
        xs = transform.apply(next(iter(x.values())) if single else x)
        bundle_splits[key] = Split(xs, y, lengths=lengths.get(key), bucket=ds.bucket and key == "train",
                                   padding=main.padding)

    meta = {
        "source": src.kind,
        "task": task,
        "task_reason": main.task_reason if ds.task is None else "set by data.task",
        "input_encoding": encodings,
        "target_shape": list(train_y.shape[1:]),
        "target_dtype": str(train_y.dtype).removeprefix("torch."),
        "standardize": bool(transform.kind != "identity"),
        "split": {
            "train": len(bundle_splits["train"] or []), "val": len(bundle_splits["val"] or []),
            "test": len(bundle_splits["test"] or []), "shuffled": bool(shuffled), "seed": spec.seed,
            "val_from": "val_path" if src.val is not None else "fraction",
            "test_from": "test_path" if src.test is not None else "fraction",
        },
        "notes": notes,
        **{k: v for k, v in main.meta.items() if k != "files"},
        **src.meta,
    }
    if src.kind == "npz":
        meta["target"] = ds.target or "y"
    if main.lengths is not None:
        meta["lengths"] = {"min": int(main.lengths.min()), "max": int(main.lengths.max()),
                           "mean": round(float(main.lengths.mean()), 2), "bucket": ds.bucket}
    if num_classes is not None:
        meta["num_classes"] = num_classes
    if main.ids and main.vocab_size:
        meta.setdefault("vocab_size", main.vocab_size)
    if class_names is not None:
        meta["class_names"] = class_names
    return DataBundle(
        task=task, train=bundle_splits["train"], val=bundle_splits["val"], test=bundle_splits["test"],  # type: ignore[arg-type]
        num_classes=num_classes, transform=transform, input_shapes=dict(facts.inputs), class_names=class_names,
        meta=meta,
    )
