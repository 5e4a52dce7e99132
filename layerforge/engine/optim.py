"""Optimizers (torch.optim) and learning-rate schedules.

Schedules are pure functions of the optimizer-step and epoch counters (plus the small state of
reduce_on_plateau), so a resumed run sets exactly the rate an uninterrupted run would have had, and a
constant schedule costs nothing per step.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable

from .rules import mode_of

if TYPE_CHECKING:
    import torch

    from .schema import OptimizerSpec, ScheduleSpec


def build_optimizer(spec: "OptimizerSpec", params: Iterable["torch.nn.Parameter"],
                    impl: dict[str, bool] | None = None) -> "torch.optim.Optimizer":
    """The spec's optimizer over the trainable ``params``; ``impl``: how its step runs (``fused=True``,
    ``foreach=...``: :meth:`layerforge.runtime.Speedups.optimizer_kwargs`), which never changes the update's
    formula, only its kernels."""
    import torch

    params = [p for p in params if p.requires_grad]
    kw = dict(impl or {})
    if spec.name == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov,
                               weight_decay=spec.weight_decay, **kw)
    if spec.name in ("adam", "adamw"):
        cls = torch.optim.Adam if spec.name == "adam" else torch.optim.AdamW
        return cls(params, lr=spec.lr, betas=spec.betas, eps=spec.eps, weight_decay=spec.weight_decay,
                   amsgrad=spec.amsgrad, **kw)
    return torch.optim.RMSprop(params, lr=spec.lr, alpha=spec.alpha, eps=spec.eps, weight_decay=spec.weight_decay,
                               momentum=spec.momentum, **kw)


def load_optimizer_state(optimizer: "torch.optim.Optimizer", state: dict[str, Any]) -> None:
    """Load a checkpoint's optimizer state, keeping this run's step implementation.

    ``Optimizer.load_state_dict`` takes ``fused``/``foreach`` from the saved groups, so a run resumed with
    ``fast.fused_optimizer: false`` would silently step fused again; and a fused step keeps its ``step``
    counter on the parameter's device, the others on the CPU. Both follow this run's choice instead (the
    update itself is the same formula either way).
    """
    import torch

    impl = {k: optimizer.param_groups[0].get(k) for k in ("fused", "foreach")}
    groups = [{**g, **impl} for g in state["param_groups"]]
    optimizer.load_state_dict({**state, "param_groups": groups})
    fused = bool(impl["fused"])
    for group in optimizer.param_groups:
        for p in group["params"]:
            st = optimizer.state.get(p, {})
            step = st.get("step")
            if isinstance(step, torch.Tensor):
                st["step"] = step.to(p.device if fused else "cpu", torch.float32)


class Schedule:
    """The learning rate at each optimizer step. ``per_step`` says whether it must be set every step."""

    def __init__(self, spec: "ScheduleSpec", base_lr: float, steps_per_epoch: int, epochs: int, monitor: str) -> None:
        self.spec = spec
        self.name = spec.name
        self.base = base_lr
        self.spe = max(1, steps_per_epoch)
        self.total = self.spe * epochs
        self.warmup = int(round(spec.warmup_epochs * self.spe)) + spec.warmup_steps
        self.per_step = self.warmup > 0 or self.name in ("cosine", "one_cycle", "warmup_linear")
        self.monitor = spec.monitor or monitor
        self.mode = spec.mode if spec.mode != "auto" else mode_of(self.monitor)
        # reduce_on_plateau state
        self.scale = 1.0
        self.best: float | None = None
        self.bad = 0

    def lr(self, step: int, epoch: int) -> float:
        """Rate for optimizer step ``step`` (0-based, global) during epoch ``epoch`` (0-based)."""
        s = self.spec
        if self.name == "one_cycle":
            peak = s.max_lr or self.base
            start, final = peak / s.div_factor, peak / s.div_factor / s.final_div_factor
            up = max(1.0, s.pct_start * self.total - 1)
            if step <= up:
                return _cos(start, peak, step / up)
            return _cos(peak, final, min(1.0, (step - up) / max(1.0, self.total - 1 - up)))
        w = self.warmup
        warm = (step + 1) / w if step < w else 1.0
        if self.name == "none":
            return self.base * warm
        if self.name == "step":
            return self.base * warm * s.gamma ** (epoch // s.step_size)
        if self.name == "reduce_on_plateau":
            return max(s.min_lr, self.base * self.scale) * warm
        if step < w:
            return self.base * warm
        t = min(1.0, (step - w) / max(1, self.total - w))
        if self.name == "cosine":
            return _cos(self.base, s.min_lr, t)
        return self.base * (1.0 - t)  # warmup_linear

    def epoch_end(self, metrics: dict[str, float]) -> None:
        """reduce_on_plateau: shrink the rate after ``patience`` epochs without improvement."""
        if self.name != "reduce_on_plateau" or self.monitor not in metrics:
            return
        value = metrics[self.monitor]
        thr = self.spec.threshold
        margin = abs(self.best) * thr if self.best is not None else 0.0
        better = self.best is None or (value < self.best - margin if self.mode == "min" else value > self.best + margin)
        if better:
            self.best, self.bad = value, 0
        else:
            self.bad += 1
            if self.bad > self.spec.patience:
                self.scale *= self.spec.factor
                self.bad = 0

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale, self.best, self.bad = float(state["scale"]), state["best"], int(state["bad"])


def _cos(a: float, b: float, t: float) -> float:
    """Cosine interpolation from a (t=0) to b (t=1)."""
    return b + (a - b) * (1 + math.cos(math.pi * t)) / 2


def set_lr(optimizer: "torch.optim.Optimizer", lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr
