"""``layerforge profile``: parameters, exact FLOPs, latency, throughput and memory of a spec's model.

For each batch size (each with its own warm-up): end-to-end inference latency and a full training step
(zero_grad, forward, loss, backward, optimizer step), each layer's forward and backward time
(:mod:`.layer_timing`), memory measured by PyTorch's own tracking beside the analytic estimate
(:mod:`.memory`), and the machine's matmul rate and copy bandwidth measured in the same run
(:mod:`.machine`) to tell memory- from compute-bound layers.

Profiling never changes the caller's model: it works on a deep copy, and PyTorch's global random state is
restored afterwards (``torch.random.fork_rng``).
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Callable, ContextManager

from ..errors import UsageError
from ..graph import param_counts
from .estimate import estimate_memory
from .layer_timing import LayerTimes, time_layers
from .memory import MemorySplit, optimizer_state_bytes, tensor_bytes, track
from .report import BatchProfile, ConfigProfile, MemoryReport
from .run import Run, conditions, make_run, resolve_device, resolve_settings, run_conditions
from .step import loss_of, make_inputs, make_optimizer
from .timing import measure, time_once
from .verdict import batch_bound, layer_profile, set_shares, sum_check, verdict

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..graph import Graph

__all__ = ["Run", "conditions", "loss_of", "make_inputs", "make_optimizer", "make_run", "profile_model",
           "resolve_device", "resolve_settings", "run_conditions"]


# ---------------------------------------------------------------------------------------------
# One model
# ---------------------------------------------------------------------------------------------
def profile_model(model: "nn.Module", graph: "Graph", run: Run, *, name: str = "model", source: str | None = None,
                  overrides: list[str] | None = None) -> ConfigProfile:
    """Profile a built graph module (see :func:`layerforge.graph.build_module`) at every batch size.
    ``model`` itself is left untouched: the work happens on a deep copy."""
    import torch

    s = run.settings
    counts = param_counts(graph)
    params = sum(c[0] for c in counts.values())
    trainable = sum(c[1] for c in counts.values())
    uncounted = [n.name for n in graph.nodes if n.flops() is None]
    per_sample = sum(f for n in graph.nodes if (f := n.flops()) is not None)
    cfg = ConfigProfile(name, source, list(overrides or []), params, trainable, per_sample, uncounted, [])

    work = copy.deepcopy(model).to(run.device)
    runner = work
    if s.compile:
        runner = torch.compile(work)
    want_inf = s.mode in ("inference", "both")
    want_train = s.mode in ("train", "both")
    if want_train and trainable == 0:
        want_train = False
        cfg.notes.append("no trainable parameters: the training step is not measured")
    opt = make_optimizer(s.optimizer, [p for p in work.parameters() if p.requires_grad]) if want_train else None
    scaler = run.scaler() if want_train else None

    for bs in s.batch_sizes:
        run.on_event(f"{name}: batch {bs}")
        xs = make_inputs(graph, bs, run.device, seed=bs)
        b = _profile_batch(runner, work, graph, xs, bs, run, counts, want_inf, want_train, opt, scaler)
        cfg.batches.append(b)
        del xs
    cfg.verdict = verdict(cfg, run.machine)
    if s.compile:
        cfg.notes.append("per-layer times are of the eager layers; the end-to-end times are compiled")
    del work, runner, opt
    if run.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return cfg


def _profile_batch(runner: "nn.Module", work: "nn.Module", graph: "Graph", xs: list["torch.Tensor"], bs: int, run: Run,
                   counts: dict[str, tuple[int, int, int]], want_inf: bool,
                   want_train: bool, opt: "torch.optim.Optimizer | None", scaler: Any) -> BatchProfile:
    import torch

    s, sync, tm = run.settings, run.sync, run.timing
    fwd_flops = sum(lp for n in graph.nodes if (lp := n.flops()) is not None) * bs
    bwd_flops = sum(lp for n in graph.nodes if (lp := n.backward_flops()) is not None) * bs
    b = BatchProfile(bs, fwd_flops, bwd_flops)

    def infer() -> None:
        with torch.inference_mode(), run.autocast():
            runner(*xs)

    def step() -> None:
        assert opt is not None
        opt.zero_grad(set_to_none=True)
        with run.autocast():
            loss = loss_of(runner(*xs))
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()

    if want_inf:
        work.eval()
        run.on_event(f"batch {bs}: inference end to end")
        if s.compile:
            b.first_call["inference"] = _compile_call(infer, sync)
        b.inference = measure(infer, tm, sync)
        b.inference_samples_per_s = bs / b.inference.median
        b.inference_gflops = fwd_flops / b.inference.median / 1e9
        if s.compile:
            b.compile_time["inference"] = max(0.0, b.first_call["inference"] - b.inference.median)
    if want_train:
        work.train()
        run.on_event(f"batch {bs}: training step end to end")
        if s.compile:
            b.first_call["train"] = _compile_call(step, sync)
        b.train = measure(step, tm, sync)
        b.train_samples_per_s = bs / b.train.median
        b.train_gflops = (fwd_flops + bwd_flops) / b.train.median / 1e9
        if s.compile:
            b.compile_time["train"] = max(0.0, b.first_call["train"] - b.train.median)
        assert opt is not None
        # The gradients of the last step are still there; with fp16 the scaler unscales them each time.
        b.optimizer_step = measure(opt.step if scaler is None else lambda: (scaler.step(opt), scaler.update()), tm, sync)
    peak = run.machine.bf16_peak_tflops
    if peak:
        if b.inference_gflops is not None:
            b.fraction_of_peak["inference"] = b.inference_gflops / 1e3 / peak
        if b.train_gflops is not None:
            b.fraction_of_peak["train"] = b.train_gflops / 1e3 / peak

    times: dict[str, LayerTimes] = {n.name: LayerTimes() for n in graph.nodes}
    if s.per_layer:
        times = time_layers(work, xs, inference=want_inf, train=want_train, settings=run.layer_timing, sync=sync,
                            autocast=run.autocast, on_layer=lambda m: run.on_event(f"batch {bs}: {m}"))
    b.layers = [layer_profile(n, bs, counts[n.name][0], times[n.name], run.machine, run.act_bytes) for n in graph.nodes]
    set_shares(b.layers, train=want_train)
    batch_bound(b, run.machine)
    if s.per_layer:
        if want_inf and b.inference is not None:
            b.checks.append(sum_check("inference", [lp.forward for lp in b.layers], b.inference, s.tolerance, s.compile))
        if want_train and b.train is not None:
            parts = [x for lp in b.layers for x in (lp.forward_train, lp.backward)] + [b.optimizer_step]
            b.checks.append(sum_check("train", parts, b.train, s.tolerance, s.compile))

    run.on_event(f"batch {bs}: memory")
    if want_inf:
        b.memory.append(memory_report(runner, work, graph, xs, run.device, run.settings.dtype, run.autocast))
    if want_train:
        b.memory.append(memory_report(runner, work, graph, xs, run.device, run.settings.dtype, run.autocast,
                                      opt=opt, optimizer=run.settings.optimizer, scaler=scaler))
    return b


def _compile_call(fn: Callable[[], None], sync: Callable[[], None]) -> float:
    """Wall time of the first call, which compiles; a compiler failure becomes a UsageError."""
    from torch._dynamo.exc import TorchDynamoException

    try:
        return time_once(fn, sync)
    except TorchDynamoException as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"torch.compile failed: {first}", hint="profile without --compile (inductor on the CPU "
                         "needs a working C++ compiler)") from e


def _difference(m: MemorySplit, a: MemorySplit) -> dict[str, int]:
    return {k: getattr(m, k) - getattr(a, k) for k in m.to_dict()}


def memory_report(runner: "nn.Module", work: "nn.Module", graph: "Graph", xs: list["torch.Tensor"], device: str,
                  dtype: str, autocast: Callable[[], ContextManager[None]], *, opt: "torch.optim.Optimizer | None" = None,
                  optimizer: str = "adam", scaler: Any = None) -> MemoryReport:
    """Memory of one inference pass (``opt`` None) or one training step, measured by PyTorch's tracking,
    beside the analytic estimate traced on fake tensors (:mod:`.estimate`)."""
    train = opt is not None
    pm = track(_step(runner, work, xs, autocast, opt, scaler), device)
    held = tensor_bytes([*work.parameters(), *work.buffers()])
    inputs = tensor_bytes(xs)
    if train:
        assert opt is not None
        grads = tensor_bytes(p.grad for p in work.parameters())
        fwd = pm.get("forward")
        state = optimizer_state_bytes(opt)
        measured = MemorySplit(held, grads, state, fwd.end if fwd else 0, inputs, held + state + inputs + pm.peak)
        opt.zero_grad(set_to_none=True)
    else:
        measured = MemorySplit(held, 0, 0, pm.peak, inputs, held + inputs + pm.peak)
    analytic = estimate_memory(graph, len(xs[0]) if xs else 1, train=train, optimizer=optimizer, dtype=dtype,
                               device=device).split
    return MemoryReport("train" if train else "inference", measured, analytic, _difference(measured, analytic),
                        pm.peak_phase, pm.phases, pm.method)


def _step(runner: "nn.Module", work: "nn.Module", xs: list["torch.Tensor"], autocast: Callable[[], ContextManager[None]],
          opt: "torch.optim.Optimizer | None", scaler: Any) -> Callable[[Callable[[str], ContextManager[None]]], None]:
    """The tracked work: an inference forward, or a training step from the steady state (optimizer state
    exists, gradients do not yet), each part inside ``phase(name)``."""
    import torch

    if opt is None:
        work.eval()

        def infer(phase: Callable[[str], ContextManager[None]]) -> None:
            with phase("forward"), torch.inference_mode(), autocast():
                out = runner(*xs)
                del out

        return infer
    work.train()
    opt.zero_grad(set_to_none=True)

    def step(phase: Callable[[str], ContextManager[None]]) -> None:
        with phase("forward"), autocast():
            loss = loss_of(runner(*xs))
        with phase("backward"):
            (scaler.scale(loss) if scaler is not None else loss).backward()
            del loss
        with phase("optimizer"):
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()

    return step


def measure_memory(graph: "Graph", batch: int, *, train: bool, optimizer: str = "adam", device: str = "cpu",
                   seed: int = 0) -> MemoryReport:
    """Measured beside analytic memory of one fp32 inference pass or training step of a freshly built model
    at ``batch``, after one untimed warm-up call (which creates the optimizer's state, as in a profile)."""
    import contextlib

    import torch

    from ..graph import build_module

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        work = build_module(graph).to(device)
    xs = make_inputs(graph, batch, device, seed=seed)
    params = [p for p in work.parameters() if p.requires_grad]
    opt = make_optimizer(optimizer, params) if train and params else None
    warm = _step(work, work, xs, contextlib.nullcontext, opt, None)
    warm(lambda _name: contextlib.nullcontext())
    return memory_report(work, work, graph, xs, device, "fp32", contextlib.nullcontext, opt=opt, optimizer=optimizer)
