"""Derived figures: per-layer rates and roofline bound, the sum check, the per-config verdict, the
side-by-side comparison rows. Pure arithmetic over measured numbers (no torch)."""
from __future__ import annotations

from typing import Any

from ..graph import Node
from .layer_timing import LayerTimes
from .machine import Machine
from .report import BatchProfile, ConfigProfile, LayerProfile, SumCheck
from .timing import Stats


def roofline(flops: int | None, nbytes: int, seconds: float | None, machine: Machine
             ) -> tuple[float | None, str | None, float | None, float | None]:
    """(intensity FLOP/B, bound, achieved GFLOP/s, efficiency vs the attainable rate)."""
    if flops is None or nbytes <= 0:
        return None, None, None, None
    intensity = flops / nbytes
    bound = "compute" if intensity >= machine.balance else "memory"
    if not seconds or seconds <= 0:
        return intensity, bound, None, None
    achieved = flops / seconds / 1e9
    attainable = min(machine.matmul_gflops, intensity * machine.copy_gbps)
    return intensity, bound, achieved, (achieved / attainable if attainable > 0 else None)


def layer_bytes(node: Node, batch: int, params: int, act_bytes: int) -> int:
    """Bytes one forward pass of the layer must move at least: read its inputs and parameters, write its output."""
    acts = (node.in_elements + node.out_elements) * batch * act_bytes
    return acts + params * 4


def layer_profile(node: Node, batch: int, params: int, times: LayerTimes, machine: Machine, act_bytes: int
                  ) -> LayerProfile:
    f = node.flops()
    b = node.backward_flops()
    flops = None if f is None else f * batch
    bflops = None if b is None else b * batch
    fwd = times.forward or times.forward_train
    nbytes = layer_bytes(node, batch, params, act_bytes)
    intensity, bound, gflops, eff = roofline(flops, nbytes, fwd.median if fwd else None, machine)
    bg = None
    if bflops is not None and times.backward is not None and times.backward.median > 0:
        bg = bflops / times.backward.median / 1e9
    return LayerProfile(node.name, node.layer.type, params, flops, bflops, times.forward, times.forward_train,
                        times.backward, 0.0, gflops, bg, nbytes, intensity, bound, eff,
                        node.layer.extra_info(node.in_shapes, node.out_shape))


def layer_time(lp: LayerProfile, train: bool) -> float:
    """The time a layer contributes: forward + backward of a training step, or the inference forward."""
    if train and lp.forward_train is not None:
        return lp.forward_train.median + (lp.backward.median if lp.backward else 0.0)
    return lp.forward.median if lp.forward else 0.0


def set_shares(layers: list[LayerProfile], train: bool) -> None:
    total = sum(layer_time(lp, train) for lp in layers)
    for lp in layers:
        lp.share = layer_time(lp, train) / total if total > 0 else 0.0


def sum_check(mode: str, parts: list[Stats | None], e2e: Stats, tolerance: float, compiled: bool) -> SumCheck:
    layer_sum = sum(p.median for p in parts if p is not None)
    rel = (layer_sum - e2e.median) / e2e.median if e2e.median > 0 else 0.0
    ok = abs(rel) <= tolerance and not compiled
    what = "Σ layers" + (" + optimizer step" if mode == "train" else "")
    if ok:
        note = f"{what} is within ±{tolerance:.0%} of the end-to-end time ({rel:+.1%})"
    else:
        reasons = []
        if compiled:
            reasons.append("torch.compile fuses across layers and removes per-layer Python overhead; the "
                           "per-layer times are of the eager layers")
        elif e2e.median < 1e-3:
            reasons.append(f"the whole {'step' if mode == 'train' else 'pass'} takes {e2e.median * 1e6:.0f} µs, so "
                           "fixed per-call costs (Python dispatch, autograd bookkeeping) are a large share and are "
                           "not the same for the whole model and for layers called one by one")
        if rel > 0 and not compiled:
            reasons.append("layers timed alone pay their own call overhead and find no data in cache from the "
                           "previous layer")
        elif rel < 0 and not compiled:
            reasons.append("the end-to-end time includes work outside the layers (the graph's loop, "
                           + ("zero_grad, the loss, freeing activations, " if mode == "train" else "")
                           + "memory traffic between layers)")
        unsettled = [p for p in [*parts, e2e] if p is not None and not p.settled]
        if unsettled:
            reasons.append(f"{len(unsettled)} measurement(s) did not settle (IQR/median above the threshold): "
                           "the machine is noisy; raise min_run_time or pin threads")
        note = f"{what} differs from the end-to-end time by {rel:+.1%} (tolerance ±{tolerance:.0%}): " + "; ".join(reasons)
    return SumCheck(mode, layer_sum, e2e.median, rel, tolerance, ok, note)


def verdict(cfg: ConfigProfile, machine: Machine) -> str:
    """One line: the slowest layers, memory- or compute-bound, how far from the machine's measured peak."""
    if not cfg.batches:
        return "nothing measured"
    b = cfg.batches[-1]
    parts = [f"batch {b.batch_size}"]
    ranked = sorted(b.layers, key=lambda lp: lp.share, reverse=True)
    cfg.slowest = [{"name": lp.name, "type": lp.type, "share": lp.share} for lp in ranked[:3] if lp.share > 0]
    if ranked and any(lp.share > 0 for lp in ranked):
        parts.append("slowest layers " + ", ".join(f"{lp.name} ({lp.share:.0%})" for lp in ranked[:3]))
    if b.intensity is not None and b.bound is not None:
        rel = "<" if b.bound == "memory" else "≥"
        parts.append(f"{b.bound}-bound ({b.intensity:.1f} FLOP/B {rel} machine balance {machine.balance:.1f} FLOP/B)")
    rate = b.inference_gflops if b.inference_gflops is not None else b.train_gflops
    if rate is not None:
        parts.append(f"{rate:.2f} GFLOP/s = " + fraction(rate, machine.matmul_gflops,
                                                         f"the measured {machine.matmul_dtype} matmul rate"))
        attainable = min(machine.matmul_gflops, (b.intensity or 0) * machine.copy_gbps)
        if attainable > 0 and rate / attainable < 0.1:
            parts.append("far below both roofs: per-call overhead (dispatch, small kernels) dominates")
    if cfg.uncounted:
        parts.append(f"FLOPs uncounted for {', '.join(cfg.uncounted)}")
    return "; ".join(parts)


def fraction(value: float, reference: float, what: str) -> str:
    """'X % of <what>', never above 100 %: a value beyond a best-case reference means the reference was
    measured while other work slowed it down; say so, and by how much."""
    if reference <= 0:
        return f"? of {what} (not measured)"
    if value <= reference:
        return f"{value / reference:.1%} of {what}"
    return (f"more than {what} ({reference:.2f}), which was disturbed while it was measured: it is at least "
            f"{value / reference:.1f}× too low (re-run on a quieter machine, or with --thorough)")


def disturbed_layers(layers: list[LayerProfile]) -> list[str]:
    """Layers that ran faster than the machine's roof allows: the reference was disturbed."""
    return [lp.name for lp in layers if lp.efficiency is not None and lp.efficiency > 1.0]


def comparison_rows(configs: list[ConfigProfile]) -> list[dict[str, Any]]:
    """One row per (config, batch size): the side-by-side table."""
    rows = []
    for c in configs:
        for b in c.batches:
            mem = {m.mode: m for m in b.memory}
            rows.append({
                "config": c.name, "batch_size": b.batch_size, "params": c.params,
                "flops_per_sample": c.flops_per_sample, "uncounted": list(c.uncounted),
                "inference_median": b.inference.median if b.inference else None,
                "inference_p95": b.inference.p95 if b.inference else None,
                "inference_samples_per_s": b.inference_samples_per_s,
                "train_median": b.train.median if b.train else None,
                "train_samples_per_s": b.train_samples_per_s,
                "inference_peak_bytes": mem["inference"].measured.peak if "inference" in mem else None,
                "train_peak_bytes": mem["train"].measured.peak if "train" in mem else None,
                "bound": b.bound,
                "slowest": (max(b.layers, key=lambda lp: lp.share).name if any(lp.share > 0 for lp in b.layers)
                            else None),  # None: layers were not timed
            })
    return rows


def batch_bound(b: BatchProfile, machine: Machine) -> None:
    """Whole-model intensity and bound from the per-layer FLOPs and bytes (counted layers only)."""
    counted = [lp for lp in b.layers if lp.flops is not None]
    nbytes = sum(lp.bytes for lp in counted)
    if counted and nbytes > 0:
        b.intensity = sum(lp.flops or 0 for lp in counted) / nbytes
        b.bound = "compute" if b.intensity >= machine.balance else "memory"
