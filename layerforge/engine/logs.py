"""Experiment logs (``train.log: [tensorboard, csv]``), written by trainer callbacks into the run directory.

- ``csv``: ``metrics.csv``, the epoch records of ``metrics.jsonl`` as a table; rewritten whole after each
  epoch, so after a resume (which drops the lines past the checkpoint) it holds no duplicated epochs.
- ``tensorboard``: event files in ``tensorboard/`` through tensorboardX (the ``logs`` extra; torch's own
  writer needs the whole tensorboard package). Every scalar's step is the global batch count:
  ``train/loss_step`` per batch; ``train/<metric>``, ``val/<metric>`` and ``run/lr``, ``run/epoch``,
  ``run/time_s``, ``run/val_time_s``, ``run/compile_s``, ``run/samples_per_s`` per epoch; the spec as text;
  at the end, ``tensorboard/hparams/`` holds the hyperparameters (the spec's values, flattened to
  ``train.optimizer.lr``, ``model.layers.conv1.filters``, ...) with the best and last epochs' metrics, for TensorBoard's HParams
  view across runs and search trials. A resumed run purges the steps past its checkpoint.

The per-batch losses are kept as tensors and read once per epoch (no device sync per step).
"""
from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .events import Callback, RunInfo, TrainResult
from .rundir import NOT_METRICS, RunDir

if TYPE_CHECKING:
    import torch

    from ..spec.schema import Spec


def make_loggers(spec: "Spec") -> list[Callback]:
    """The callbacks ``spec.train.log`` asks for; a missing tensorboardX is reported before training."""
    loggers: list[Callback] = []
    if "csv" in spec.train.log:
        loggers.append(CsvLog())
    if "tensorboard" in spec.train.log:
        from ..extras import require

        require("tensorboardX", "logs", "train.log: tensorboard")
        loggers.append(TensorBoardLog(spec))
    return loggers


class CsvLog(Callback):
    """metrics.csv beside metrics.jsonl (same epoch records)."""

    def __init__(self) -> None:
        self.run: RunDir | None = None
        self.records: list[dict[str, Any]] = []

    def on_start(self, info: RunInfo) -> None:
        if info.run_dir is None:
            return
        self.run = RunDir(info.run_dir)
        self.records, _ = self.run.read_metrics()  # a resumed run's jsonl is already cut back to its checkpoint
        self.run.write_metrics_csv(self.records)

    def on_epoch_end(self, record: dict[str, Any], improved: bool) -> None:
        if self.run is not None:
            self.records.append(record)
            self.run.write_metrics_csv(self.records)


def _tag(key: str) -> str:
    if key.startswith("val_"):
        return f"val/{key[4:]}"
    if key in NOT_METRICS:  # lr, epoch and the timings (val_time_s is no validation metric)
        return f"run/{key}"
    return f"train/{key}"


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def hparams(spec: "Spec") -> dict[str, bool | int | float | str]:
    """The validated spec's values, defaults included, as flat ``a.b.c`` keys (layers by name, else index;
    lists as text): the hyperparameters TensorBoard compares runs by. (Not plugins, profile or train.out.)"""
    values = spec.model_dump(mode="json", exclude_none=True, exclude={"plugins", "profile"})
    values.get("train", {}).pop("out", None)
    out: dict[str, bool | int | float | str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif prefix == "model.layers" and isinstance(value, list):
            for i, layer in enumerate(value):
                walk(f"model.layers.{layer.get('name', i)}", {k: v for k, v in layer.items() if k != "name"})
        elif isinstance(value, (list, tuple)):
            out[prefix] = str(list(value))
        elif isinstance(value, (bool, int, float, str)):
            out[prefix] = value

    walk("", values)
    return out


class TensorBoardLog(Callback):
    """Event files in the run's ``tensorboard/`` folder (see the module docstring)."""

    def __init__(self, spec: "Spec") -> None:
        self.spec = spec
        self.writer: Any = None
        self.folder: Path | None = None
        self.pending: list[tuple[int, "torch.Tensor"]] = []
        self.steps_per_epoch = 1
        self.params = 0

    def on_start(self, info: RunInfo) -> None:
        if info.run_dir is None:
            return
        import yaml
        from tensorboardX import SummaryWriter

        self.folder = folder = RunDir(info.run_dir).tensorboard
        self.steps_per_epoch, self.params = info.steps_per_epoch, info.params
        # Resuming: events past the checkpoint's last step belong to the lost future; TensorBoard drops them.
        purge = (info.start_epoch - 1) * info.steps_per_epoch + 1 if info.resumed else None
        # (a suffix keeps a resumed run's file apart from the first one's, even within the same second)
        self.writer = SummaryWriter(logdir=str(folder), purge_step=purge, flush_secs=30,
                                    filename_suffix=f".{time.time_ns()}")
        if not info.resumed:
            text = yaml.safe_dump(self.spec.raw, sort_keys=False, allow_unicode=True)
            self.writer.add_text("spec", "\n".join("    " + line for line in text.splitlines()), 0)  # a code block

    def on_step(self, epoch: int, step: int, loss: "torch.Tensor") -> None:
        self.pending.append(((epoch - 1) * self.steps_per_epoch + step, loss))

    def _flush_steps(self) -> None:
        if not self.pending:
            return
        import torch

        values = torch.stack([loss.float() for _, loss in self.pending]).tolist()  # one device sync per epoch
        for (global_step, _), v in zip(self.pending, values):
            self.writer.add_scalar("train/loss_step", v, global_step)
        self.pending = []

    def on_epoch_end(self, record: dict[str, Any], improved: bool) -> None:
        if self.writer is None:
            return
        self._flush_steps()
        step = int(record.get("step", record["epoch"] * self.steps_per_epoch))
        for key, value in record.items():
            if key != "step" and _number(value):
                self.writer.add_scalar(_tag(key), value, step)
        self.writer.flush()

    def on_end(self, result: TrainResult) -> None:
        if self.writer is None:
            return
        self._flush_steps()
        metrics = {f"{which}/{k}": float(v) for which, rec in (("best", result.best), ("last", result.last))
                   for k, v in (rec or {}).items() if k not in ("epoch", "step") and _number(v)}
        if metrics:
            shutil.rmtree(self.folder / "hparams", ignore_errors=True)  # one session per run, also after a resume
            values = {**hparams(self.spec), "model.params": self.params}
            self.writer.add_hparams(values, metrics, name="hparams", global_step=(result.last or {}).get("step"))
        self.writer.close()
        self.writer = None
