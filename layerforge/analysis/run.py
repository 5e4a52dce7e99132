"""The conditions of one profiling run, fixed once and shared by every config so they compare fairly:
settings (the spec's ``profile:`` section under command-line values), device, dtype/autocast, threads,
timing rule, and the machine's measured limits. Also the ``conditions`` block of the JSON output."""
from __future__ import annotations

import contextlib
import platform
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterator

from ..errors import UsageError
from .machine import Machine, measure_machine
from .profile_schema import ProfileSpec
from .timing import TimingSettings, synchronizer

if TYPE_CHECKING:
    import torch

Event = Callable[[str], None]
LOSS = "Σ over float outputs of mean(output²) (a stand-in loss: elementwise, negligible cost)"


@dataclass
class Run:
    """Everything fixed for one profiling run (shared by every config so they compare fairly)."""

    settings: ProfileSpec
    device: str
    timing: TimingSettings
    machine: Machine
    quick: bool = False
    on_event: Event = field(default=lambda _msg: None)

    @property
    def sync(self) -> Callable[[], None]:
        return synchronizer(self.device)

    @property
    def layer_timing(self) -> TimingSettings:
        """Each layer's measurements get a quarter of the time budget (there are three per layer and batch
        size); calls of a few µs still get hundreds of samples."""
        from dataclasses import replace

        t = self.timing
        return replace(t, min_run_time=t.min_run_time / 4, max_run_time=t.max_run_time / 4)

    @property
    def act_bytes(self) -> int:
        return 4 if self.settings.dtype == "fp32" else 2

    def autocast(self) -> ContextManager[None]:
        from ..runtime import autocast_factory

        return autocast_factory(self.settings.dtype, _torch_device(self.device))()

    def scaler(self) -> Any:
        """A GradScaler for fp16 (CUDA), else None: the same set-up as training's."""
        from ..runtime import make_scaler

        return make_scaler(self.settings.dtype, _torch_device(self.device))


def _torch_device(device: str) -> "torch.device":
    import torch

    return torch.device(device)


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------
def resolve_settings(base: ProfileSpec, overrides: dict[str, Any] | None = None, quick: bool = False,
                     thorough: bool = False) -> ProfileSpec:
    """The spec's ``profile:`` section with command-line values on top (``None`` = not given), under the
    ``--quick`` or ``--thorough`` preset."""
    from pydantic import ValidationError

    from .profile_schema import QUICK, THOROUGH

    if quick and thorough:
        raise UsageError("--quick and --thorough contradict each other", hint="give one of them")
    data = base.model_dump()
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if quick or thorough:
        data.update({k: v for k, v in (QUICK if quick else THOROUGH).items() if k not in given})
    data.update(given)
    try:
        s = ProfileSpec.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise UsageError(f"bad profile setting {key}: {err['msg']}", hint="see 'layerforge profile --help'") from None
    return s


def resolve_device(settings: ProfileSpec) -> str:
    """The profile's device as a string (``cpu`` or ``cuda:N``), checked with the dtype."""
    from ..runtime import check_precision
    from ..runtime import resolve_device as resolve

    device = resolve(settings.device, hint="use --device cpu, or install a CUDA build of PyTorch")
    check_precision(settings.dtype, device, setting="--dtype")
    return str(device)


@contextlib.contextmanager
def run_conditions(settings: ProfileSpec, device: str) -> Iterator[None]:
    """Threads set, cuDNN autotuning on for CUDA (as timm's benchmark does: each shape gets its fastest
    kernel during warm-up), global RNG state saved; all restored afterwards."""
    import torch

    old = torch.get_num_threads()
    old_bench = torch.backends.cudnn.benchmark
    if settings.threads:
        torch.set_num_threads(settings.threads)
    cuda = device.startswith("cuda")
    if cuda:
        torch.backends.cudnn.benchmark = True
    try:
        with torch.random.fork_rng(devices=[torch.device(device)] if cuda else []):
            yield
    finally:
        torch.set_num_threads(old)
        torch.backends.cudnn.benchmark = old_bench


def make_run(settings: ProfileSpec, quick: bool = False, on_event: Event | None = None, thorough: bool = False) -> Run:
    """Resolve the device and measure the machine (call inside :func:`run_conditions`)."""
    device = resolve_device(settings)
    timing = TimingSettings(warmup=settings.warmup, min_run_time=settings.min_run_time,
                            max_run_time=settings.max_run_time, min_repeats=settings.min_repeats,
                            threshold=settings.threshold)
    ev = on_event or (lambda _m: None)
    ev("measuring the machine (matmul rate, copy bandwidth)")
    machine = measure_machine(device, settings.dtype, timing, quick=quick, thorough=thorough)
    return Run(settings, device, timing, machine, quick, ev)


def conditions(run: Run) -> dict[str, Any]:
    import torch

    from .._version import __version__

    s = run.settings
    return {
        "device": run.device, "device_name": run.machine.device_name, "dtype": s.dtype,
        "autocast": s.dtype != "fp32", "threads": run.machine.threads, "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda, "python_version": platform.python_version(),
        "layerforge_version": __version__, "compile": s.compile, "mode": s.mode, "batch_sizes": list(s.batch_sizes),
        "optimizer": s.optimizer, "loss": LOSS, "quick": run.quick, "per_layer": s.per_layer,
        "per_layer_method": "each layer timed alone with its captured inputs (see docs/profile.md)",
        "tolerance": s.tolerance, "timing": run.timing.to_dict(), "layer_timing": run.layer_timing.to_dict(),
        "cudnn_benchmark": run.device.startswith("cuda"),
        "repeats": "adaptive: at least min_repeats calls and min_run_time seconds, until IQR/median < threshold "
                   "or max_run_time (per-call samples; counts are in each measurement's 'repeats')",
    }
