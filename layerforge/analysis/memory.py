"""Memory: measured by PyTorch's own tracking, beside an analytic estimate split the same way.

Measurement (one untimed step, with phases ``forward``, ``backward``, ``optimizer`` marked):

- CUDA: the caching allocator's statistics (``torch.cuda.memory_allocated`` at each phase boundary and
  ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` for each phase's peak).
- CPU: ``torch.profiler.profile(profile_memory=True)`` records every allocation and free of PyTorch's CPU
  allocator as a ``[memory]`` event with its size; a running sum over them (in time order) gives the bytes
  live at any moment, and each phase (a ``record_function`` range) its end value and peak.

Either way the tracker reports bytes *allocated during the step* relative to its start; tensors that
already exist (parameters, buffers, optimizer state, inputs) are counted from the tensors themselves.
"""
from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterable, Iterator

if TYPE_CHECKING:
    import torch


PhaseFn = Callable[[str], ContextManager[None]]


@dataclass
class Phase:
    """Bytes allocated since the step began: at the phase's start, its end, and its peak."""

    name: str
    start: int = 0
    end: int = 0
    peak: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PhaseMemory:
    phases: list[Phase] = field(default_factory=list)
    method: str = ""

    @property
    def peak(self) -> int:
        return max((p.peak for p in self.phases), default=0)

    @property
    def peak_phase(self) -> str | None:
        return max(self.phases, key=lambda p: p.peak).name if self.phases else None

    def get(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)


def track(run: Callable[[PhaseFn], None], device: str) -> PhaseMemory:
    """Call ``run(phase)``; ``run`` wraps each part of its work in ``with phase("name"):``."""
    if device.startswith("cuda"):
        return _track_cuda(run)
    return _track_cpu(run)


def _track_cuda(run: Callable[[PhaseFn], None]) -> PhaseMemory:
    import torch

    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    out = PhaseMemory(method="torch.cuda.memory_allocated / max_memory_allocated (caching allocator)")

    @contextlib.contextmanager
    def phase(name: str):
        p = Phase(name, start=torch.cuda.memory_allocated() - base)
        torch.cuda.reset_peak_memory_stats()
        yield
        torch.cuda.synchronize()
        p.end = torch.cuda.memory_allocated() - base
        p.peak = max(p.start, torch.cuda.max_memory_allocated() - base)
        out.phases.append(p)

    run(phase)
    return out


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence the process's file descriptor 2 (C++ logging) for the duration of the block."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (embedded interpreters)
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _track_cpu(run: Callable[[PhaseFn], None]) -> PhaseMemory:
    from torch.profiler import ProfilerActivity, profile, record_function

    names: list[str] = []

    @contextlib.contextmanager
    def phase(name: str):
        names.append(name)
        with record_function(f"layerforge::{name}"):
            yield

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr():  # Kineto prints "profiler_start/stop" lines to fd 2 at any log level
        prof.__enter__()
    try:
        run(phase)
    finally:
        with _quiet_stderr():
            prof.__exit__(None, None, None)
    events = prof.profiler.kineto_results.events()
    ranges = {e.name()[len("layerforge::"):]: (e.start_ns(), e.end_ns())
              for e in events if e.name().startswith("layerforge::")}
    allocs = sorted(((e.start_ns(), e.nbytes()) for e in events
                     if e.name() == "[memory]" and str(e.device_type()).endswith("CPU")), key=lambda t: t[0])
    out = PhaseMemory(method="torch.profiler profile_memory=True ([memory] allocation events of the CPU allocator)")
    for name in names:
        lo, hi = ranges[name]
        live = 0
        p = Phase(name)
        seen_start = False
        for t, nbytes in allocs:
            if t > hi:
                break
            if t >= lo and not seen_start:
                p.start = p.peak = live
                seen_start = True
            live += nbytes
            if t >= lo:
                p.peak = max(p.peak, live)
        if not seen_start:
            p.start = p.peak = live
        p.end = live
        out.phases.append(p)
    return out


# ---------------------------------------------------------------------------------------------
# Bytes of tensors that exist (counted from the tensors, each storage once)
# ---------------------------------------------------------------------------------------------
def tensor_bytes(tensors: Iterable["torch.Tensor | None"]) -> int:
    seen: set[int] = set()
    total = 0
    for t in tensors:
        if t is None:
            continue
        st = t.untyped_storage()
        key = st._cdata  # the storage itself (fake tensors have no data pointer)
        if key in seen:
            continue
        seen.add(key)
        total += st.nbytes()
    return total


def optimizer_state_bytes(opt: "torch.optim.Optimizer") -> int:
    import torch

    return tensor_bytes(v for state in opt.state.values() for v in state.values() if isinstance(v, torch.Tensor))


# ---------------------------------------------------------------------------------------------
# The split (measured here, estimated by .estimate)
# ---------------------------------------------------------------------------------------------
@dataclass
class MemorySplit:
    """Bytes by category; ``peak`` is the high-water mark of the whole step."""

    parameters: int  # parameters + buffers
    gradients: int
    optimizer_state: int
    activations: int  # training: what is still allocated after the forward pass; inference: its high-water mark
    inputs: int
    peak: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)
