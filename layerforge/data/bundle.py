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
    """One split held in memory: inputs ``x`` (tensor or dict of tensors) and targets ``y``.

    Variable-length sequences carry ``lengths`` (valid steps per sample; x is padded with 0 at the end, or
    at the start with ``padding`` pre): each batch is then cut to its longest sequence, and ``bucket``
    makes shuffled batches of samples of similar length (see :mod:`layerforge.data.ragged`)."""

    x: Inputs
    y: "torch.Tensor"
    lengths: "torch.Tensor | None" = None
    bucket: bool = False
    padding: str = "post"

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def to(self, device: Any) -> "Split":
        lengths = None if self.lengths is None else self.lengths.to(device)
        return Split(_to(self.x, device), self.y.to(device), lengths, self.bucket, self.padding)

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: "torch.Generator | None" = None, drop_last: bool = False
    ) -> Iterator[tuple[Inputs, "torch.Tensor"]]:
        """Yield (x, y) batches by index. With ``shuffle``, the order comes from ``generator`` (a CPU
        generator, so a seed gives the same order on every device)."""
        import torch

        n = len(self)
        if self.lengths is not None:
            yield from self._ragged_batches(batch_size, shuffle, generator, drop_last)
            return
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


    def _ragged_batches(self, batch_size: int, shuffle: bool, generator: "torch.Generator | None",
                        drop_last: bool) -> Iterator[tuple[Inputs, "torch.Tensor"]]:
        """Batches of variable-length sequences, each cut to its longest sequence. ``bucket``: the shuffled
        order is sorted by length within windows of 50 batches, and those batches are yielded in a shuffled
        order, so a batch holds sequences of similar length."""
        import torch

        assert self.lengths is not None
        n = len(self)
        lengths = self.lengths.cpu()
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        stop = n - n % batch_size if drop_last else n
        if shuffle and self.bucket:
            window = 50 * batch_size
            chunks = [order[i : i + window] for i in range(0, n, window)]
            order = torch.cat([c[torch.argsort(lengths[c], stable=True)] for c in chunks])
        batches = [order[i : i + batch_size] for i in range(0, stop, batch_size)]
        if shuffle and self.bucket:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        full = self._padded_steps()
        for idx in batches:
            t = max(int(lengths[idx].max()), 1)
            steps = slice(full - t, full) if self.padding == "pre" else slice(0, t)  # where the valid steps lie
            idx = idx.to(self.y.device)
            x = _index(self.x, idx)
            x = {k: v[:, steps] for k, v in x.items()} if isinstance(x, dict) else x[:, steps]
            y = self.y[idx]
            yield x, (y[:, steps] if y.dim() >= 2 and y.shape[1] == full else y)

    def _padded_steps(self) -> int:
        x = self.x if not isinstance(self.x, dict) else next(iter(self.x.values()))
        return int(x.shape[1])


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
