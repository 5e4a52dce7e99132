"""What the trainer tells the outside world: a callback protocol and the records it passes.

The CLI renders these (Rich progress, plain lines, JSON); tests and notebooks may write their own
callbacks. ``on_step`` is called once per batch with the loss as a detached 0-d tensor: calling
``float()`` on it synchronises with the device, so a renderer should do that only when it redraws.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass
class RunInfo:
    """Facts known when training starts."""

    name: str
    run_dir: Path | None
    device: str
    precision: str
    epochs: int
    start_epoch: int  # the first epoch this call will run (1-based; > 1 when resuming)
    steps_per_epoch: int
    batch_size: int
    train_samples: int
    val_samples: int
    params: int
    task: str
    loss: str
    metrics: list[str]
    monitor: str
    resumed: bool = False
    trainable_params: int | None = None  # None: all of them (no layer is frozen)
    notes: list[str] = field(default_factory=list)  # what the data loader adapted (reshapes, encodings)
    speed: str = ""  # the speed-ups in use, one line (fused optimizer, channels-last, compile ...)
    speedups: dict[str, Any] = field(default_factory=dict)  # each speed-up: {"value": ..., "why": ...}
    request_stop: Callable[[], None] = field(default=lambda: None, repr=False)


@dataclass
class TrainResult:
    """What ``train`` returns."""

    status: str  # completed | early_stopped | interrupted | failed
    run_dir: Path | None
    epochs_run: int  # epochs completed in total (including those before a resume)
    best_epoch: int | None
    monitor: str
    best: dict[str, Any] | None  # the best epoch's record
    last: dict[str, Any] | None  # the last completed epoch's record
    history: list[dict[str, Any]]
    time_s: float
    message: str | None = None  # why training stopped, when it did not complete
    model: "nn.Module | None" = field(default=None, repr=False)
    plot_process: Any = field(default=None, repr=False)  # the background process drawing plots/*.png

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "run_dir": str(self.run_dir) if self.run_dir else None,
                "epochs_run": self.epochs_run, "best_epoch": self.best_epoch, "monitor": self.monitor,
                "best": self.best, "last": self.last, "time_s": round(self.time_s, 3), "message": self.message}


class Callback:
    """Override what you need; every method is a no-op by default."""

    def on_start(self, info: RunInfo) -> None:
        """Training is about to start (after any resume)."""

    def on_epoch_start(self, epoch: int, steps: int) -> None:
        """Epoch ``epoch`` (1-based) starts; it has ``steps`` batches."""

    def on_step(self, epoch: int, step: int, loss: "torch.Tensor") -> None:
        """Batch ``step`` (1-based within the epoch) is done; ``loss`` is its detached loss."""

    def on_epoch_end(self, record: dict[str, Any], improved: bool) -> None:
        """An epoch is done: its metrics record (as in metrics.jsonl); ``improved``: a new best."""

    def on_note(self, message: str) -> None:
        """Something decided during training that is worth a line (what ``compile: auto`` chose)."""

    def on_end(self, result: TrainResult) -> None:
        """Training ended (completed, stopped early, interrupted or failed)."""


def overrides(cb: Callback, method: str) -> bool:
    """True when ``cb`` implements ``method`` itself (so the trainer can skip no-op per-step calls)."""
    impl = getattr(type(cb), method, None)
    return impl is not None and impl is not getattr(Callback, method)
