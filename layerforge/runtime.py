"""Where a model runs and how repeatably: device, precision (autocast, gradient scaler), seeding,
determinism, random-state capture and the environment record. One module, used by the engine (training,
evaluation, prediction), by the profiler and by the front door's seeded build.

A CPU run with the same seed repeats bit for bit because every source of randomness is seeded by
:func:`seed_everything` (torch CPU/CUDA, Python, NumPy) and the shuffle order comes from a dedicated
generator whose state a checkpoint saves with the others (:func:`capture_rng`).
"""
from __future__ import annotations

import contextlib
import os
import platform
import random
import sys
from typing import TYPE_CHECKING, Any, Callable, ContextManager

from ._version import __version__
from .errors import UsageError

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "bf16", "fp16")


def resolve_device(name: str, hint: str = "use train.device: cpu (or auto), e.g. --set train.device=cpu"
                   ) -> "torch.device":
    """``auto`` → the first CUDA device when available, else cpu; ``cuda[:N]`` must exist. ``hint`` says
    how to choose another device where the value came from (a spec key, a flag)."""
    import torch

    if name == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UsageError(f"device '{name}' was asked for, but this machine has no CUDA GPU (torch {torch.__version__})",
                         hint=hint)
    dev = torch.device(name)
    if dev.index is None:
        return torch.device("cuda", 0)
    if dev.index >= torch.cuda.device_count():
        raise UsageError(f"device '{name}' does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)",
                         hint=f"use cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    return dev


def check_precision(precision: str, device: "torch.device", setting: str = "precision") -> None:
    """fp16 autocast needs CUDA (CPU fp16 kernels are slow emulations); bf16 and fp32 run anywhere."""
    if precision == "fp16" and device.type != "cuda":
        raise UsageError(f"{setting} fp16 needs a CUDA GPU (float16 autocast with a gradient scaler)",
                         hint="use bf16 on the CPU (autocast), or fp32")


def autocast_factory(precision: str, device: "torch.device") -> Callable[[], ContextManager]:
    """A zero-argument factory of the forward pass's autocast context (a no-op for fp32)."""
    import torch

    check_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def make_scaler(precision: str, device: "torch.device") -> Any:
    """A GradScaler for fp16 on CUDA, else None."""
    import torch

    if precision == "fp16" and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and every CUDA device), Python's ``random`` and NumPy: the one seeding function."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@contextlib.contextmanager
def seeded(seed: int, device: Any):
    """Run a block with torch's generators seeded by ``seed``, restoring them afterwards: evaluation and
    prediction draw their randomness (a spiking model's rate coding) the same way every time, and leave
    training's random stream (captured in checkpoints) untouched."""
    import torch

    dev = torch.device(device)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def set_determinism(deterministic: bool) -> None:
    import torch

    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def capture_rng(shuffle: "torch.Generator") -> dict[str, Any]:
    """Every random state (torch CPU/CUDA, Python, NumPy, the shuffle generator) as plain data + tensors."""
    import numpy as np
    import torch

    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch_cpu": torch.get_rng_state(),
        "shuffle": shuffle.get_state(),
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], shuffle: "torch.Generator") -> None:
    import numpy as np
    import torch

    torch.set_rng_state(state["torch_cpu"])
    shuffle.set_state(state["shuffle"])
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "torch_cuda" in state and torch.cuda.is_available():
        cuda_states = state["torch_cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def environment(device: "torch.device", precision: str) -> dict[str, Any]:
    """Versions, device and threads: what environment.json records beside a run."""
    import numpy as np
    import torch

    env: dict[str, Any] = {
        "layerforge": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "device": str(device),
        "precision": precision,
        "cuda_available": torch.cuda.is_available(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }
    if device.type == "cuda":
        env["cuda_device_name"] = torch.cuda.get_device_name(device)
        env["cuda_version"] = torch.version.cuda
        env["cudnn_version"] = torch.backends.cudnn.version()
    return env
