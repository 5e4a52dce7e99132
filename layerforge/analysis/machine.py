"""The machine's limits, measured in the same run as the model: a large matmul's FLOP/s, a large copy's
bytes/s, their ratio (the machine balance, FLOP per byte), and on CUDA the card's bf16 matmul peak.

A layer whose arithmetic intensity (FLOPs per byte it must move) is below the balance cannot keep the
arithmetic units busy: it is memory-bound (the roofline model).
"""
from __future__ import annotations

import platform
import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .timing import TimingSettings, measure, synchronizer

if TYPE_CHECKING:
    import torch


@dataclass
class Machine:
    device: str  # "cpu" / "cuda:0"
    device_name: str
    threads: int
    matmul_dtype: str
    matmul_size: int
    matmul_gflops: float  # best achieved by an n×n @ n×n matmul in the run's dtype
    copy_bytes: int
    copy_gbps: float  # best bytes read + written per second by a large tensor copy, in GB/s (1e9)
    balance: float  # FLOP per byte = matmul FLOP/s ÷ copy bytes/s
    bf16_peak_tflops: float | None = None  # CUDA only: a large bf16 matmul
    matmul_rounds: list[float] = field(default_factory=list)  # best GFLOP/s of each round (the max is used)
    copy_rounds: list[float] = field(default_factory=list)
    cores_free: float | None = None  # CPU: cores not busy with other work (load average) when measured

    @property
    def settled(self) -> bool:
        """Did the rounds agree (each within 25 % of the best)? If not, other work disturbed the reference."""
        return all(r >= 0.75 * max(rs) for rs in (self.matmul_rounds, self.copy_rounds) if rs for r in rs)

    def oversubscribed(self) -> bool:
        """More threads than cores free: threads wait for each other at every parallel region."""
        return self.cores_free is not None and self.threads > 1 and self.threads > self.cores_free + 0.5

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def cores_free() -> float:
    """CPU cores this process may use minus the others' load (1-minute load average, this process excluded)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - not available
        return float(cores)
    return max(0.0, cores - max(0.0, load - 1.0))


_CACHE: dict[tuple, Machine] = {}
ROUNDS = 3


def measure_machine(device: str, dtype: str, settings: TimingSettings, quick: bool = False,
                    thorough: bool = False) -> Machine:
    """Measure matmul throughput and copy bandwidth on ``device`` (cached per device, dtype, threads), in
    ``ROUNDS`` interleaved rounds: each roof is the best of all rounds (other work only ever lowers a rate),
    and rounds that disagree say the reference was disturbed."""
    import torch

    key = (device, dtype, torch.get_num_threads(), quick, thorough)
    if key in _CACHE:
        return _CACHE[key]
    cuda = device.startswith("cuda")
    tdtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    n = (2048 if quick else 8192) if cuda else (256 if quick else 1024)
    # Large enough to leave the caches (the source and destination together exceed a server's L3).
    mib = (256 if quick else 1024) if cuda else (32 if quick else 256 if thorough else 64)
    mm: list[float] = []
    cp: list[float] = []
    with torch.random.fork_rng(devices=[torch.device(device)] if cuda else []):
        for _ in range(ROUNDS):
            mm.append(matmul_tflops(device, tdtype, n, settings) * 1e3)
            nbytes, gbps = copy_gbps(device, mib, settings)
            cp.append(gbps)
        peak = cuda_bf16_peak_tflops(device, settings, quick) if cuda else None
    gflops, gbps = max(mm), max(cp)
    m = Machine(device=device, device_name=device_name(device), threads=torch.get_num_threads(),
                matmul_dtype=dtype, matmul_size=n, matmul_gflops=gflops, copy_bytes=nbytes, copy_gbps=gbps,
                balance=gflops / gbps if gbps > 0 else float("inf"), bf16_peak_tflops=peak, matmul_rounds=mm,
                copy_rounds=cp, cores_free=None if cuda else cores_free())
    _CACHE[key] = m
    return m


def matmul_tflops(device: str, dtype: "torch.dtype", n: int, settings: TimingSettings) -> float:
    """Best TFLOP/s of an n×n @ n×n matmul. Roofs are best cases: the fastest call (not the median) sets
    them, so noise from other processes on a shared machine does not lower the ceiling."""
    import torch

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    st = measure(lambda: torch.mm(a, b), settings, synchronizer(device))
    return 2 * n**3 / st.min / 1e12


def copy_gbps(device: str, mib: int, settings: TimingSettings) -> tuple[int, float]:
    """(bytes moved per call, best GB/s) of copying an fp32 tensor of ``mib`` MiB: read + write."""
    import torch

    src = torch.empty(mib * 2**20 // 4, device=device, dtype=torch.float32).uniform_()
    dst = torch.empty_like(src)
    st = measure(lambda: dst.copy_(src), settings, synchronizer(device))
    nbytes = 2 * src.numel() * src.element_size()
    return nbytes, nbytes / st.min / 1e9


def cuda_bf16_peak_tflops(device: str, settings: TimingSettings, quick: bool = False) -> float:
    """Achieved TFLOP/s of a large bf16 matmul: the practical peak the model's rate is compared with."""
    import torch

    return matmul_tflops(device, torch.bfloat16, 4096 if quick else 8192, settings)
