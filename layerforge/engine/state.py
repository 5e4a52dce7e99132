"""What a checkpoint carries and how a run is restored from it (mixed into the Trainer).

Everything a resumed run needs to continue bit for bit: weights, optimizer, schedule, grad scaler,
counters, metric history, early-stopping state, every RNG state, and — for a stop in the middle of an
epoch — the shuffle generator's state at the epoch's start and the partial epoch's metric lists.
Also Ctrl-C: the first one asks the loop to stop at the next step boundary (which saves exactly this).
"""
from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointError
from . import checkpoint as ckpt
from .optim import load_optimizer_state
from ..runtime import capture_rng, restore_rng

if TYPE_CHECKING:
    from .trainer import Trainer


class TrainerState:
    """Checkpoint and interruption methods of :class:`~layerforge.engine.trainer.Trainer`."""

    def load(self: "Trainer", path) -> None:
        """Restore weights and the full training state from a checkpoint directory (exact resume)."""
        path = ckpt.resolve(path)  # once: the weights and the state come from the same save
        ckpt.load_weights(path, self.model)
        state = ckpt.load_state(path)
        try:
            load_optimizer_state(self.optimizer, state["optimizer"])
            self._resume_compile(state.get("compile"))
            self.schedule.load_state_dict(state["schedule"])
            if self.scaler is not None and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            self.epoch = int(state["epoch"])
            self.global_step = int(state["global_step"])
            self.opt_step = int(state["opt_step"])
            self.history = list(state["history"])
            early = state["early"]
            self.best_value, self.best_epoch, self.bad_epochs = early["best_value"], early["best_epoch"], int(early["bad"])
            self.elapsed = float(state.get("elapsed", 0.0))
            restore_rng(state["rng"], self.shuffle_gen)
            self._resume_step = int(state.get("step_in_epoch", 0))
            if self._resume_step:
                self._epoch_shuffle_state = state["epoch_shuffle_state"]
                self.stats.load_state_dict(state["stats"])
        except (KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f"the training state in {ckpt.resolve(path)} does not fit this run ({type(e).__name__}: {e})",
                                  hint="was spec.yaml edited after the run started?") from None
        self.resumed = True

    def _state(self: "Trainer", mid_epoch: int = 0) -> dict[str, Any]:
        state: dict[str, Any] = {
            "epoch": self.epoch, "global_step": self.global_step, "opt_step": self.opt_step,
            "step_in_epoch": mid_epoch,
            "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": capture_rng(self.shuffle_gen),
            "early": {"best_value": self.best_value, "best_epoch": self.best_epoch, "bad": self.bad_epochs},
            "history": self.history, "elapsed": self.elapsed, "compile": self.speed.compile,
        }
        if mid_epoch:
            state["epoch_shuffle_state"] = self._epoch_shuffle_state
            state["stats"] = self.stats.state_dict()
        return state

    def _save_last(self: "Trainer", mid_epoch: int = 0) -> None:
        if self.run is None or self.rank != 0:
            return
        ckpt.save_checkpoint(self.run.last, self.model, self._state(mid_epoch),
                             {"epoch": self.epoch, "global_step": self.global_step, "step_in_epoch": mid_epoch})

    def _save_best(self: "Trainer", record: dict[str, Any]) -> None:
        if self.rank != 0:
            return
        if self.run is None:
            if self.spec.early_stopping.restore_best:
                self._best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            return
        ckpt.save_checkpoint(self.run.best, self.model, {"epoch": record["epoch"], "record": record},
                             {"epoch": record["epoch"], "monitor": self.monitor, "value": record.get(self.monitor)})

    def _restore_best(self: "Trainer") -> None:
        if self.run is not None and self.best_epoch is not None and self.run.best.exists():
            ckpt.load_weights(self.run.best, self.model)
        elif self._best_weights is not None:
            self.model.load_state_dict(self._best_weights)


    def request_stop(self: "Trainer") -> None:
        """Stop at the next step boundary, saving a checkpoint that resumes exactly (what Ctrl-C does)."""
        self._stop = True

    def _install_sigint(self: "Trainer") -> Any:
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum: int, frame: Any) -> None:
            if self._stop:  # a second Ctrl-C: stop now
                signal.signal(signal.SIGINT, signal.default_int_handler)
                raise KeyboardInterrupt
            self._stop = True

        return signal.signal(signal.SIGINT, handler)

    def _restore_sigint(self: "Trainer", previous: Any) -> None:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
