"""Adaptive wall-clock timing: warm up, then repeat until the spread settles (median, IQR, p95).

The stopping rule is torch.utils.benchmark's ``adaptive_autorange``: keep measuring until at least
``min_run_time`` seconds and ``min_repeats`` samples were taken and IQR/median is below ``threshold``, or
until ``max_run_time``. Unlike ``Timer`` (which times blocks of calls and reports block means), every
sample here is ONE call, so the p95 is a real per-call latency. On CUDA each sample is bracketed by
``torch.cuda.synchronize()``: the time is what a caller waits for, kernels included.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class TimingSettings:
    """How long and how often to measure (see ProfileSpec for the meaning of each field)."""

    warmup: int = 3
    min_run_time: float = 0.1
    max_run_time: float = 2.0
    min_repeats: int = 5
    threshold: float = 0.1
    max_repeats: int = 100_000

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Stats:
    """Per-call times in seconds."""

    median: float
    iqr: float
    p25: float
    p75: float
    p95: float
    mean: float
    min: float
    max: float
    repeats: int
    settled: bool  # IQR/median fell below the threshold before max_run_time

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def spread(self) -> float:
        """IQR relative to the median (0.05 = ±5 % band)."""
        return self.iqr / self.median if self.median > 0 else 0.0


def _quantile(sorted_xs: list[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of already sorted samples."""
    if len(sorted_xs) == 1:
        return sorted_xs[0]
    pos = q * (len(sorted_xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def summarize_samples(samples: list[float], threshold: float = 0.1) -> Stats:
    xs = sorted(samples)
    p25, med, p75 = _quantile(xs, 0.25), _quantile(xs, 0.5), _quantile(xs, 0.75)
    iqr = p75 - p25
    return Stats(median=med, iqr=iqr, p25=p25, p75=p75, p95=_quantile(xs, 0.95), mean=sum(xs) / len(xs),
                 min=xs[0], max=xs[-1], repeats=len(xs), settled=med > 0 and iqr / med < threshold)


def synchronizer(device: str) -> Callable[[], None]:
    """A function that waits for queued work on ``device`` (a no-op on CPU, where ops are synchronous)."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.synchronize
    return lambda: None


def measure(
    fn: Callable[[], Any],
    settings: TimingSettings,
    sync: Callable[[], None] = lambda: None,
    setup: Callable[[], Any] | None = None,
) -> Stats:
    """Time ``fn`` per call after ``settings.warmup`` untimed calls. ``setup`` runs untimed before each
    call (e.g. a forward pass whose backward is timed)."""
    for _ in range(settings.warmup):
        if setup is not None:
            setup()
        fn()
    sync()
    samples: list[float] = []
    timed = 0.0
    next_check = settings.min_repeats
    clock = time.perf_counter
    while True:
        if setup is not None:
            setup()
            sync()
        t0 = clock()
        fn()
        sync()
        dt = clock() - t0
        samples.append(dt)
        timed += dt
        n = len(samples)
        if n >= settings.max_repeats:
            break
        if timed >= settings.max_run_time and n >= min(settings.min_repeats, 3):
            break
        if n >= next_check and timed >= settings.min_run_time:
            # Check the spread every ~10 % more samples (sorting each time would be quadratic).
            next_check = n + max(1, n // 10)
            if summarize_samples(samples, settings.threshold).settled:
                break
    return summarize_samples(samples, settings.threshold)


def time_once(fn: Callable[[], Any], sync: Callable[[], None] = lambda: None) -> float:
    """Wall time of a single call (used for the first, compiling call of torch.compile)."""
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0
