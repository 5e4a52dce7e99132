"""Where a model runs, how fast and how repeatably: device, precision (autocast, gradient scaler), the
speed-ups of ``train.fast`` / ``train.compile`` resolved per device (:func:`resolve_speedups`) and the global
flags they set for a run (:func:`run_flags`), seeding, determinism, random-state capture and the environment
record. One module, used by the engine (training, evaluation, prediction), by the profiler and by the front
door's seeded build. Torch is imported inside the functions: the spec's schema imports this module.

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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterator

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


@contextlib.contextmanager
def run_flags(speed: "Speedups", threads: int | None, deterministic: bool) -> Iterator[None]:
    """Threads, determinism, TF32 and the cuDNN autotuner as ``speed`` chose them, for the length of a run;
    every global flag is put back afterwards (a notebook's next cell sees torch as it was)."""
    import torch

    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(), cudnn.benchmark,
             cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32)
    if threads:
        torch.set_num_threads(threads)
    set_determinism(deterministic)
    if speed.device_type == "cuda":
        cudnn.benchmark = speed.cudnn_benchmark
        cudnn.allow_tf32 = matmul.allow_tf32 = speed.tf32
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1])
        cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32 = saved[2:]


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


def environment(device: "torch.device", precision: str, speed: "Speedups | None" = None) -> dict[str, Any]:
    """Versions, device, threads and the speed-ups in use: what environment.json records beside a run."""
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
    if speed is not None:
        env["speedups"] = speed.to_dict()
    return env


# --- speed-ups ----------------------------------------------------------------------------------
# What ``train.fast`` and ``train.compile`` resolve to on a device, and why. Every choice is measured in
# docs/benchmarks.md (CPU) or marked there as not measured (CUDA); the engine reports the result in the
# train header and in environment.json.

FUSED_OPTIMIZERS = ("sgd", "adam", "adamw")  # torch.optim classes with fused=True on CPU and CUDA
CHANNELS_LAST_AUTO = {"cpu": True, "cuda": True}  # 2-D conv models: measured on CPU, the usual choice on CUDA
COMPILE_SECONDS = 60.0  # conservative compile-time estimate (measured 26–54 s for the benchmark models on 2 cores)
COMPILE_GAIN = {"cpu": 0.10, "cuda": 0.30}  # assumed fraction of the eager step a compiled step saves
COMPILE_WARMUP_STEPS, COMPILE_PROBE_STEPS = 2, 8  # eager steps left out, then timed, before compile: auto decides


@dataclass
class Speedups:
    """The speed-ups of one run, as resolved for its device; ``why`` gives the reason for each."""

    device_type: str
    optimizer: str  # the optimizer step's implementation: fused | foreach | for-loop
    channels_last: bool
    tf32: bool
    cudnn_benchmark: bool
    pin_memory: bool
    inference_mode: bool
    compile: str  # on | off | auto (decided after the first timed steps)
    why: dict[str, str] = field(default_factory=dict)
    compile_s: float | None = None  # the compile time measured, once compiled

    def optimizer_kwargs(self) -> dict[str, bool]:
        """Keyword arguments for the torch.optim constructor."""
        return {"fused": True} if self.optimizer == "fused" else {"foreach": True} if self.optimizer == "foreach" \
            else {"foreach": False}

    def to_dict(self) -> dict[str, Any]:
        names = ("optimizer", "channels_last", "tf32", "cudnn_benchmark", "pin_memory", "inference_mode", "compile")
        out: dict[str, Any] = {k: {"value": getattr(self, k), "why": self.why.get(k, "")} for k in names}
        if self.compile_s is not None:
            out["compile"]["compile_s"] = round(self.compile_s, 3)
        return out

    def summary(self, optimizer_name: str) -> str:
        """One line for the train header."""
        parts = [f"{self.optimizer} {optimizer_name}"]
        parts.append("channels-last" if self.channels_last else "")
        if self.device_type == "cuda":
            parts += ["tf32" if self.tf32 else "no tf32", "cudnn autotune" if self.cudnn_benchmark else "",
                      "pinned copies" if self.pin_memory else ""]
        parts.append("inference_mode eval" if self.inference_mode else "no_grad eval")
        parts.append({"on": "compiled", "off": "eager", "auto": "compile: auto (decided after the first steps)"}[self.compile])
        return " · ".join(p for p in parts if p)


def optimizer_impl(name: str, choice: Any, device: "torch.device", params: list["torch.Tensor"]) -> tuple[str, str]:
    """(implementation, why) of the optimizer step. ``choice``: the spec's auto / true / false."""
    torch_default = "foreach" if device.type == "cuda" else "for-loop"
    if choice is False:
        return torch_default, "fast.fused_optimizer: false (torch's default step)"
    if name not in FUSED_OPTIMIZERS:
        return torch_default, f"torch has no fused {name} (torch's default step)"
    import torch

    if tuple(int(v) for v in torch.__version__.split(".")[:2]) < (2, 4):
        return torch_default, f"torch {torch.__version__} has no fused {name} on every device (2.4 has)"
    odd = [p for p in params if not p.is_floating_point() or p.device.type != device.type]
    if odd:
        return torch_default, f"a parameter is {odd[0].dtype} on {odd[0].device} (fused needs float on {device.type})"
    return "fused", f"one fused kernel per step ({'set' if choice is True else 'measured 1.3× faster on the CPU MLP'})"


def has_conv2d(model: "torch.nn.Module") -> bool:
    import torch

    return any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def resolve_speedups(fast: Any, compile: Any, deterministic: bool, device: "torch.device", optimizer_name: str,
                     model: "torch.nn.Module") -> Speedups:
    """What each of ``train.fast``'s switches (and ``train.compile``) means for this model on this device."""
    cuda = device.type == "cuda"
    why: dict[str, str] = {}
    impl, why["optimizer"] = optimizer_impl(optimizer_name, fast.fused_optimizer,
                                            device, [p for p in model.parameters() if p.requires_grad])

    conv = has_conv2d(model)
    if fast.channels_last is False or not conv:
        channels_last = False
        why["channels_last"] = "fast.channels_last: false" if fast.channels_last is False else "no 2-D convolution"
    else:
        channels_last = fast.channels_last is True or CHANNELS_LAST_AUTO[device.type]
        why["channels_last"] = ("set" if fast.channels_last is True else
                                f"2-D convolutions on {device.type}" + ("" if channels_last else ": did not pay"))

    def cuda_switch(key: str, choice: Any, unrepeatable: bool) -> bool:
        if not cuda:
            why[key] = "CUDA only"
            return False
        if choice is False:
            why[key] = f"fast.{key}: false"
            return False
        if unrepeatable and deterministic:
            why[key] = "off under deterministic: true"
            return False
        why[key] = "set" if choice is True else "auto on CUDA"
        return True

    tf32 = cuda_switch("tf32", fast.tf32, unrepeatable=True)
    bench = cuda_switch("cudnn_benchmark", fast.cudnn_benchmark, unrepeatable=True)
    pin = cuda_switch("pin_memory", fast.pin_memory, unrepeatable=False)
    why["inference_mode"] = "torch.inference_mode" if fast.inference_mode else "fast.inference_mode: false (no_grad)"
    if compile is True or compile is False:
        mode = "on" if compile else "off"
        why["compile"] = f"compile: {str(compile).lower()}"
    elif deterministic:
        mode, why["compile"] = "off", "compile: auto is off under deterministic: true"
    else:
        mode, why["compile"] = "auto", "decided after the first timed steps"
    return Speedups(device.type, impl, channels_last, tf32, bench, pin, fast.inference_mode, mode, why)


def compile_pays(step_s: float, remaining_steps: int, device_type: str) -> tuple[bool, str]:
    """Whether ``torch.compile`` is expected to pay back its compile time over the rest of the run: the
    eager time left × the fraction a compiled step is assumed to save must exceed the compile time."""
    left = step_s * remaining_steps
    saved = left * COMPILE_GAIN[device_type]
    verdict = saved > COMPILE_SECONDS
    return verdict, (f"{remaining_steps} steps × {step_s * 1e3:.3g} ms ≈ {left:.0f} s left eager; at "
                     f"{COMPILE_GAIN[device_type]:.0%} saved that is {saved:.0f} s "
                     f"{'>' if verdict else '≤'} ≈ {COMPILE_SECONDS:.0f} s to compile")


def inference_context(enabled: bool = True) -> ContextManager:
    """``torch.inference_mode`` (no autograd bookkeeping at all), or ``torch.no_grad`` when it is off."""
    import torch

    return torch.inference_mode() if enabled else torch.no_grad()


def laid_out(t: "torch.Tensor", speed: Speedups) -> "torch.Tensor":
    """A 4-D floating-point input (images) in channels-last order when ``speed`` uses it, else ``t``."""
    import torch

    if speed.channels_last and t.ndim == 4 and t.is_floating_point():
        return t.contiguous(memory_format=torch.channels_last)
    return t


def pinned(t: "torch.Tensor", speed: Speedups) -> "torch.Tensor":
    """``t`` in page-locked host memory when ``speed`` says so (CUDA), so that copies of its slices to the
    GPU can run without waiting (``non_blocking=True``); else ``t`` itself."""
    return t.pin_memory() if speed.pin_memory and t.device.type == "cpu" else t
