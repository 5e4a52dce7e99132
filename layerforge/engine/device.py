"""Device, precision, seeding and random-state capture: everything that makes a run repeatable.

A CPU run with the same seed repeats bit for bit because every source of randomness is seeded here
(torch CPU/CUDA, Python, NumPy) and the shuffle order comes from a dedicated generator whose state is
saved in each checkpoint with the others.
"""
from __future__ import annotations

import contextlib
import os
import platform
import random
import sys
from typing import TYPE_CHECKING, Any, Callable, ContextManager

from ..errors import TrainingError, UsageError

if TYPE_CHECKING:
    import torch


def resolve_device(name: str) -> "torch.device":
    """``auto`` → cuda when available, else cpu; ``cuda[:N]`` must exist."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UsageError(f"device '{name}' was asked for, but this machine has no CUDA GPU (torch {torch.__version__})",
                         hint="use train.device: cpu (or auto), e.g. --set train.device=cpu")
    dev = torch.device(name)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UsageError(f"device '{name}' does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)",
                         hint=f"use cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    return dev


def autocast_factory(precision: str, device: "torch.device") -> Callable[[], ContextManager]:
    """A zero-argument factory of the forward pass's autocast context (a no-op for fp32)."""
    import torch

    if precision == "fp32":
        return contextlib.nullcontext
    if precision == "fp16" and device.type != "cuda":
        raise UsageError("precision fp16 needs a CUDA GPU (float16 autocast with a gradient scaler)",
                         hint="use precision: bf16 on CPU, or fp32")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def make_scaler(precision: str, device: "torch.device") -> Any:
    """A GradScaler for fp16 on CUDA, else None."""
    import torch

    if precision == "fp16" and device.type == "cuda":
        return torch.amp.GradScaler("cuda")
    return None


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)  # also seeds every CUDA device


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

    from .. import __version__

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


def check_finite_or_raise(losses: "torch.Tensor", epoch: int, first_step: int, steps_per_epoch: int) -> None:
    """Raise a TrainingError naming the first non-finite loss in ``losses`` (step numbers are 1-based)."""
    import torch

    bad = (~torch.isfinite(losses)).nonzero()
    if bad.numel():
        i = int(bad[0, 0])
        step = first_step + i + 1
        value = float(losses[i])
        raise TrainingError(
            f"the loss became {value} at epoch {epoch}, step {step} of {steps_per_epoch} "
            f"(global step {(epoch - 1) * steps_per_epoch + step}); training stopped",
            hint="lower optimizer.lr, add grad_clip (e.g. grad_clip: 1.0), check the data for extreme values, "
                 "or use precision: fp32; checkpoints/last still holds the last good epoch",
        )
