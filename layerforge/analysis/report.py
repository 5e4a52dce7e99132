"""The data of a profile: plain dataclasses with ``to_dict`` (the JSON output); the CLI's tables are a view.

Units: times in seconds, memory in bytes, FLOPs per batch (not per sample) unless a name says otherwise,
rates in GFLOP/s (1e9) and GB/s (1e9).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .machine import Machine
from .memory import MemorySplit, Phase
from .timing import Stats


def _d(x: Any) -> Any:
    return x.to_dict() if x is not None and hasattr(x, "to_dict") else x


@dataclass
class LayerProfile:
    name: str
    type: str
    params: int
    flops: int | None  # forward, whole batch; None = uncounted
    backward_flops: int | None
    forward: Stats | None  # inference forward
    forward_train: Stats | None  # train-mode forward (autograd recording)
    backward: Stats | None
    share: float  # of the sum of per-layer times (train step layer time when train is measured)
    gflops: float | None  # forward FLOPs / forward median
    backward_gflops: float | None
    bytes: int  # bytes a forward pass must move: inputs + output (activation dtype) + parameters (fp32)
    intensity: float | None  # FLOP per byte
    bound: str | None  # "memory" | "compute" | None (uncounted)
    efficiency: float | None  # achieved GFLOP/s ÷ roofline-attainable GFLOP/s
    info: dict[str, Any] = field(default_factory=dict)  # the layer type's extra_info (per sample)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("forward", "forward_train", "backward"):
            d[k] = _d(getattr(self, k))
        return d


@dataclass
class SumCheck:
    """Do the per-layer times add up to the end-to-end time?"""

    mode: str  # inference | train
    layer_sum: float  # Σ layer medians (train: + optimizer step)
    end_to_end: float  # end-to-end median
    rel_diff: float  # (layer_sum - end_to_end) / end_to_end
    tolerance: float
    ok: bool
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MemoryReport:
    mode: str  # inference | train
    measured: MemorySplit
    analytic: MemorySplit
    difference: dict[str, int]  # measured - analytic, per category
    peak_phase: str | None
    phases: list[Phase]
    method: str

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "measured": self.measured.to_dict(), "analytic": self.analytic.to_dict(),
                "difference": dict(self.difference), "peak_phase": self.peak_phase,
                "phases": [p.to_dict() for p in self.phases], "method": self.method}


@dataclass
class BatchProfile:
    batch_size: int
    flops: int  # counted forward FLOPs of the whole model for the batch
    backward_flops: int
    inference: Stats | None = None
    inference_samples_per_s: float | None = None
    inference_gflops: float | None = None
    train: Stats | None = None  # one full step: zero_grad, forward, loss, backward, optimizer step
    train_samples_per_s: float | None = None
    train_gflops: float | None = None  # (forward + backward FLOPs) / step median
    optimizer_step: Stats | None = None
    first_call: dict[str, float] = field(default_factory=dict)  # compile: wall time of the first call per mode
    compile_time: dict[str, float] = field(default_factory=dict)  # first call - steady-state median
    fraction_of_peak: dict[str, float] = field(default_factory=dict)  # CUDA: achieved TFLOP/s ÷ bf16 peak
    intensity: float | None = None  # whole model forward, FLOP per byte
    bound: str | None = None
    layers: list[LayerProfile] = field(default_factory=list)
    checks: list[SumCheck] = field(default_factory=list)
    memory: list[MemoryReport] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = {k: _d(v) for k, v in self.__dict__.items() if k not in ("layers", "checks", "memory")}
        d["layers"] = [x.to_dict() for x in self.layers]
        d["checks"] = [x.to_dict() for x in self.checks]
        d["memory"] = {m.mode: m.to_dict() for m in self.memory}
        return d


@dataclass
class ConfigProfile:
    name: str
    source: str | None
    overrides: list[str]
    params: int
    trainable_params: int
    flops_per_sample: int  # counted forward FLOPs for one sample
    uncounted: list[str]  # layers whose FLOPs layerforge cannot count (never shown as 0)
    batches: list[BatchProfile]
    verdict: str = ""
    slowest: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    spiking: Any = None  # a SpikeReport (analysis/spiking.py) for a spiking model: rates, SOPs, energy

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("batches", "spiking")}
        d["batches"] = [b.to_dict() for b in self.batches]
        if self.spiking is not None:
            d["spiking"] = self.spiking.to_dict()
        return d


@dataclass
class SweepPoint:
    config: str
    value: str
    batch_size: int
    flops: int
    inference: float | None  # median seconds
    train: float | None
    inference_peak_bytes: int | None
    train_peak_bytes: int | None
    inference_spread: float | None = None  # IQR / median
    train_spread: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SweepResult:
    key: str  # as given, e.g. seq_len
    path: str  # the spec key path it sets, e.g. model.input_shape.0
    values: list[str]
    points: list[SweepPoint]
    plot: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "path": self.path, "values": list(self.values),
                "points": [p.to_dict() for p in self.points], "plot": self.plot}


@dataclass
class ProfileReport:
    conditions: dict[str, Any]
    machine: Machine
    configs: list[ConfigProfile]
    comparison: list[dict[str, Any]] = field(default_factory=list)
    sweep: SweepResult | None = None
    warnings: list[str] = field(default_factory=list)  # how far the figures can be trusted (busy machine)

    def to_dict(self) -> dict[str, Any]:
        return {"warnings": list(self.warnings), "conditions": dict(self.conditions), "machine": self.machine.to_dict(),
                "configs": [c.to_dict() for c in self.configs], "comparison": list(self.comparison),
                "sweep": _d(self.sweep)}
