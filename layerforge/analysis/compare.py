"""Profile one or several configs under the same conditions (side by side), optionally sweeping a value.

This is the library entry point behind ``layerforge profile``: load and validate every spec first (so a
bad file fails before minutes of measuring), fix the run's conditions once (device, dtype, threads, the
machine's measured limits), then profile each model.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import UsageError
from .profiler import profile_model
from .report import ProfileReport, SweepResult
from .run import Event, conditions, make_run, resolve_device, resolve_settings, run_conditions
from .sweep import parse_sweep, plot_sweep, points_of, sweep_overrides, sweep_path
from .verdict import comparison_rows, disturbed_layers

if TYPE_CHECKING:
    from ..graph import Graph
    from ..spec.schema import Spec


def profile_configs(
    configs: list[str | Path],
    *,
    settings: dict[str, Any] | None = None,
    overrides: list[str] | None = None,
    plugins: list[str] | None = None,
    quick: bool = False,
    thorough: bool = False,
    sweep: str | None = None,
    plot: str | Path | None = None,
    on_event: Event | None = None,
    trust_plugins: bool = False,
) -> ProfileReport:
    """Profile every config. ``settings`` are command-line values over the first spec's ``profile:``
    section (None = not given; ``batch_sizes`` may be a string such as ``"1,32,256"``; a ``min_run_time``
    without ``max_run_time`` allows up to 20 times as long); ``overrides`` are ``--set`` items applied to
    every spec; ``sweep`` is ``KEY=V1,V2,...`` (per-layer timing off unless ``settings["per_layer"]`` says
    otherwise); ``plot`` is where the sweep's PNG goes (:func:`default_plot_path` is the CLI's default)."""
    from ..build import load, module

    ev: Callable[[str], None] = on_event or (lambda _m: None)
    sets = list(overrides or [])
    loaded = [(Path(c), *load(c, sets, plugins or [], trust_plugins=trust_plugins)) for c in configs]
    base = loaded[0][1].profile
    given = normalize_settings(settings)
    if sweep and given.get("per_layer") is None:
        given["per_layer"] = False  # a sweep compares whole models; per-layer timing would multiply its time
    s = resolve_settings(base, given, quick=quick, thorough=thorough)
    key, values = parse_sweep(sweep) if sweep else (None, [])
    if key == "batch_size":
        s = s.model_copy(update={"batch_sizes": sorted(int(v) for v in values)})
    device = resolve_device(s)
    notes = [f"{p} has its own profile: section; the first config's settings are used for every config"
             for p, spec, _ in loaded[1:] if spec.profile != base]

    # Every (config, value) is validated before anything is measured: a bad value fails at once.
    jobs: list[_Job] = []
    for path, spec, graph in loaded:
        if key in (None, "batch_size"):
            jobs.append(_Job(path, spec, graph, spec.name, spec.name, sets, None))
            continue
        for v in values:
            extra = sweep_overrides(key, v, spec, graph)
            vspec, vgraph = _load_swept(path, sets, extra, plugins or [], key, v, trust_plugins)
            jobs.append(_Job(path, vspec, vgraph, f"{spec.name} [{key}={v}]", spec.name, sets + extra, v))

    with run_conditions(s, device):
        run = make_run(s, quick=quick, on_event=ev, thorough=thorough)
        results = []
        points = []
        for job in jobs:
            ev(job.name)
            cfg = profile_model(module(job.spec, job.graph), job.graph, run, name=job.name, source=str(job.path),
                                overrides=job.overrides)
            if key is None:
                cfg.spiking = _spikes(job, run.device)
            results.append(cfg)
            if key:
                points += points_of(cfg, job.label, job.value)
        sweep_result = None
        if key:
            spec0, graph0 = loaded[0][1], loaded[0][2]
            sweep_result = SweepResult(key, sweep_path(key, spec0, graph0), list(values), points)
            if plot is not None:
                sweep_result.plot = plot_sweep(sweep_result, str(plot))
        report = ProfileReport(conditions(run), run.machine, results, sweep=sweep_result)
    report.conditions["notes"] = notes
    report.warnings = trust_warnings(report)
    if len(results) > 1:
        report.comparison = comparison_rows(results)
    return report


def trust_warnings(report: ProfileReport) -> list[str]:
    """What a busy machine did to the figures: timings that did not settle, a machine reference that was
    disturbed (rounds that disagree, a model or layer faster than the roof), more threads than free cores."""
    m, out = report.machine, []
    stats = [st for c in report.configs for b in c.batches
             for st in (b.inference, b.train, b.optimizer_step,
                        *(x for lp in b.layers for x in (lp.forward, lp.forward_train, lp.backward)))
             if st is not None]
    unsettled = sum(not st.settled for st in stats)
    if unsettled:
        out.append(f"{unsettled} of {len(stats)} timings did not settle (IQR/median above "
                   f"{report.conditions['timing']['threshold']:.0%}): other work is running on this machine; the "
                   "figures are noisy (marked ~)")
    if not m.settled:
        out.append("the machine reference did not settle: matmul rounds "
                   + ", ".join(f"{r:.1f}" for r in m.matmul_rounds) + " GFLOP/s, copy rounds "
                   + ", ".join(f"{r:.1f}" for r in m.copy_rounds) + " GB/s (the best is used)")
    fast = [c.name for c in report.configs for b in c.batches
            if max(b.inference_gflops or 0, b.train_gflops or 0) > m.matmul_gflops]
    above = sorted({name for c in report.configs for b in c.batches for name in disturbed_layers(b.layers)})
    if fast or above:
        what = ", ".join(dict.fromkeys(fast)) + (" and " if fast and above else "") + (
            f"layers {', '.join(above)}" if above else "")
        out.append(f"{what} ran faster than the machine's measured roof: the reference was disturbed while it was "
                   "measured (or a kernel beats torch.mm); fractions of it are not shown above 100 %")
    if m.oversubscribed():
        out.append(f"torch uses {m.threads} threads but only about {m.cores_free:.1f} core(s) were free: threads "
                   "wait for each other; try --threads 1")
    return out


def parse_batch_sizes(text: str) -> list[int]:
    """``"1,32,256"`` → [1, 32, 256]; anything else is a UsageError."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise UsageError(f"--batch-sizes '{text}' must be positive integers separated by commas",
                         hint="e.g. --batch-sizes 1,32,256")
    return [int(p) for p in parts]


def normalize_settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    """Settings as the command line gives them → the ``profile:`` keys: batch sizes from a string, and a
    time budget that follows ``min_run_time`` (at most 20 times as long, at least 2 s)."""
    given = dict(settings or {})
    if isinstance(given.get("batch_sizes"), str):
        given["batch_sizes"] = parse_batch_sizes(given["batch_sizes"])
    if given.get("min_run_time") is not None and given.get("max_run_time") is None:
        given["max_run_time"] = max(given["min_run_time"] * 20, 2.0)
    return given


def default_plot_path(sweep: str) -> Path:
    """Where a sweep's plot goes unless told: ``profile-sweep-<key>.png`` in the current directory."""
    key = sweep.partition("=")[0].strip() or "value"
    return Path(f"profile-sweep-{''.join(c if c.isalnum() else '_' for c in key)}.png")


@dataclass
class _Job:
    path: Path
    spec: "Spec"
    graph: "Graph"
    name: str  # shown per profile, e.g. "lstm [seq_len=128]"
    label: str  # the config's own name: one line per label in the sweep plot
    overrides: list[str]
    value: str | None  # the swept value, if any


def _spikes(job: _Job, device: str) -> Any:
    """A spiking model's firing rates, SOPs and energy on its spec's data (None for other models)."""
    from ..errors import DataError
    from .spiking import is_spiking, spike_report

    if not is_spiking(job.graph):
        return None
    try:
        return spike_report((job.spec, job.graph), device=device)
    except DataError as e:  # the timing is done: report without rates rather than fail
        rep = spike_report((job.spec, job.graph), measure_data=False, device=device)
        rep.notes.insert(0, f"the spec's data could not be loaded ({e.message}), so nothing was measured")
        return rep


def _load_swept(path: Path, sets: list[str], extra: list[str], plugins: list[str], key: str, value: str,
                trust_plugins: bool = False) -> tuple["Spec", "Graph"]:
    """Load a config with a sweep value; errors name the ``--sweep`` value rather than a ``--set``."""
    from ..build import load
    from ..errors import SpecError

    try:
        return load(path, sets + extra, plugins, trust_plugins=trust_plugins)
    except SpecError as e:
        for issue in e.issues:
            item = (issue.origin or "").removeprefix("--set ")
            if item in extra:
                issue.origin = f"--sweep {key}={value} (sets {item})"
        raise
