"""The data contract between data sources and the training engine.

A source (built-in dataset, CSV, NPZ, image folder, text, generator) produces a :class:`DataBundle`:
train/val/test :class:`Split` objects, the task kind, and a fitted :class:`Transform` that evaluate and
predict re-apply. In-memory splits hold tensors and are batched by index (no per-sample Python in the
hot loop); splits too large for memory may subclass Split and batch through a DataLoader.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    import torch

TASKS = ("classification", "regression", "sequence_classification", "sequence", "language_model")

Inputs = Any  # a Tensor, or dict[str, Tensor] for a model with several named inputs


def _rows(t: "torch.Tensor", idx: "torch.Tensor | slice") -> "torch.Tensor":
    """Rows ``idx`` of ``t``: a slice is a view; an index tensor a gather, by ``index_select`` (cheaper per
    call than ``t[idx]``) unless ``t`` has another memory layout (channels-last images), which ``t[idx]`` keeps."""
    if isinstance(idx, slice) or not t.is_contiguous():
        return t[idx]
    return t.index_select(0, idx)


def _index(x: Inputs, idx: "torch.Tensor | slice") -> Inputs:
    if isinstance(x, dict):
        return {k: _rows(v, idx) for k, v in x.items()}
    return _rows(x, idx)


def _to(x: Inputs, device: Any) -> Inputs:
    if isinstance(x, dict):
        return {k: v.to(device) for k, v in x.items()}
    return x.to(device)


@dataclass
class Split:
    """One split held in memory: inputs ``x`` (tensor or dict of tensors) and targets ``y``."""

    x: Inputs
    y: "torch.Tensor"

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: Any) -> "Split":
        return Split(_to(self.x, device), self.y.to(device))

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: "torch.Generator | None" = None, drop_last: bool = False
    ) -> Iterator[tuple[Inputs, "torch.Tensor"]]:
        """Yield (x, y) batches by index. With ``shuffle``, the order comes from ``generator`` (a CPU
        generator, so a seed gives the same order on every device)."""
        import torch

        n = len(self)
        if shuffle:
            order = torch.randperm(n, generator=generator).to(self.y.device)
            stop = n - n % batch_size if drop_last else n
            for i in range(0, stop, batch_size):
                idx = order[i : i + batch_size]
                yield _index(self.x, idx), _rows(self.y, idx)
        else:
            stop = n - n % batch_size if drop_last else n
            for i in range(0, stop, batch_size):
                sl = slice(i, i + batch_size)
                yield (_index(self.x, sl) if isinstance(self.x, dict) else self.x[sl]), self.y[sl]


class Transform:
    """A fitted input transform (e.g. standardisation). Identity by default.

    ``state_dict`` must be plain tensors / numbers so it can be saved beside a run (safetensors or JSON).
    """

    kind = "identity"

    def fit(self, x: Inputs) -> "Transform":
        return self

    def apply(self, x: Inputs) -> Inputs:
        return x

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


@dataclass
class DataBundle:
    """Everything the engine needs about the data."""

    task: str  # one of TASKS
    train: Split
    val: Split | None = None
    test: Split | None = None
    num_classes: int | None = None  # classification / sequence / language_model
    transform: Transform = field(default_factory=Transform)
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # per-sample, as the model expects
    class_names: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # source description, vocabulary for text, etc.

    def to(self, device: Any) -> "DataBundle":
        return DataBundle(
            self.task, self.train.to(device), self.val.to(device) if self.val else None,
            self.test.to(device) if self.test else None, self.num_classes, self.transform, self.input_shapes,
            self.class_names, self.meta,
        )
