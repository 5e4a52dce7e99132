"""``train.compile: auto``: compile the model only when the run is long enough for it to pay back.

The first steps run eager. After ``COMPILE_WARMUP_STEPS`` untimed steps, ``COMPILE_PROBE_STEPS`` are timed
(within one epoch, so no validation or checkpoint falls inside); :func:`layerforge.runtime.compile_pays`
then weighs the eager time left against a conservative compile-time estimate. When it compiles, the next
step's extra time is the measured compile time, reported apart (``compile_s`` in that epoch's record and in
environment.json). Nothing here changes what is computed, only when ``torch.compile`` wraps the model; the
decision is saved with the checkpoint so a resumed run continues as it started.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..runtime import COMPILE_PROBE_STEPS, COMPILE_WARMUP_STEPS, compile_pays

if TYPE_CHECKING:
    from .trainer import Trainer


class CompileProbe:
    """Timing marks at given global step counts; :meth:`mark` is called when the loop reaches one."""

    def __init__(self, trainer: "Trainer") -> None:
        self.trainer = trainer
        self.warmed = 0  # untimed eager steps done so far
        self.done = False
        self.measuring = False  # compiled: the next step carries the compile time
        self.decide_at = -1
        self.t_mark = 0.0
        self.step_s = 0.0
        self.first_timed = 0
        self.unreported_compile_s: float | None = None  # measured, not yet in an epoch record

    def begin_epoch(self, steps: int) -> int:
        """Called before an epoch's loop with its number of steps; returns the first mark (-1: none)."""
        if self.done:
            return -1
        start = self.trainer.global_step
        if self.measuring:  # the decision fell on the last step of the previous epoch
            self.t_mark = self._now()
            return start + 1
        warm = max(0, COMPILE_WARMUP_STEPS - self.warmed)
        if steps <= warm:
            self.warmed += steps
            return -1
        self.warmed = COMPILE_WARMUP_STEPS
        self.first_timed = start + warm
        self.decide_at = start + min(steps, warm + COMPILE_PROBE_STEPS)
        if warm == 0:
            self.t_mark = self._now()
            return self.decide_at
        return self.first_timed

    def mark(self, epoch: int) -> int:
        """The loop has done ``trainer.global_step`` steps, a mark; returns the next mark (-1: none)."""
        t = self.trainer
        now = self._now()
        step = t.global_step
        if self.measuring:
            compile_s = max(0.0, now - self.t_mark - self.step_s)
            self.measuring, self.done = False, True
            t.speed.compile_s = self.unreported_compile_s = compile_s
            t.compile_decided(f"compiled in {compile_s:.1f} s (the first compiled step, less an eager step)")
            return -1
        if step < self.decide_at:  # the warm-up is over: start the clock
            self.t_mark = now
            return self.decide_at
        self.step_s = (now - self.t_mark) / max(1, step - self.first_timed)
        remaining = t.steps_per_epoch * t.spec.epochs - step
        pays, why = compile_pays(self.step_s, remaining, t.device.type)
        if t.world > 1:
            from .distributed import any_rank

            pays = any_rank(pays)  # every rank runs the same program
        t.speed.why["compile"] = why
        if not pays:
            self.done = True
            t.speed.compile = "off"
            t.compile_decided(f"compile: auto stays eager: {why}")
            return -1
        t.compile_now()
        t.speed.compile = "on"
        t.compile_decided(f"compile: auto compiles: {why}")
        self.measuring = True
        self.t_mark = self._now()
        return step + 1

    def _now(self) -> float:
        dev = self.trainer.device
        if dev.type == "cuda":
            import torch

            torch.cuda.synchronize(dev)
        return time.perf_counter()
