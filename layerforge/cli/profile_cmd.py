"""`layerforge profile`: measured latency, throughput, per-layer times and memory, beside exact FLOPs.

The tables are a view of :class:`layerforge.analysis.report.ProfileReport`; ``--json FILE`` writes the
same data in full. See docs/profile.md.
"""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape

from .options import PluginsOpt, SetOpt, TrustPluginsOpt

if TYPE_CHECKING:
    from ..analysis.report import BatchProfile, ConfigProfile, ProfileReport
    from ..analysis.timing import Stats


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Mode(str, Enum):
    inference = "inference"
    train = "train"
    both = "both"


class DType(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class Optim(str, Enum):
    adam = "adam"
    sgd = "sgd"


def profile(
    configs: Annotated[list[Path], typer.Argument(help="One or more specs (YAML); several are compared side by side.",
                                                  show_default=False)],
    device: Annotated[Optional[Device], typer.Option("--device", help="cpu, cuda or auto (default: the spec's "
                                                     "profile.device, else auto).", show_default=False)] = None,
    batch_sizes: Annotated[Optional[str], typer.Option("--batch-sizes", "-b", help="Comma-separated batch sizes, "
                                                       "e.g. 1,32,256 (default 1,32).", show_default=False)] = None,
    mode: Annotated[Optional[Mode], typer.Option("--mode", help="inference, train (forward+backward+optimizer) "
                                                 "or both (default).", show_default=False)] = None,
    dtype: Annotated[Optional[DType], typer.Option("--dtype", help="fp32, or bf16/fp16 autocast (fp16: CUDA only).",
                                                   show_default=False)] = None,
    compile_: Annotated[Optional[bool], typer.Option("--compile/--no-compile", help="torch.compile the model; "
                                                     "compile time is reported apart.", show_default=False)] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads (torch.set_num_threads).",
                                                   show_default=False)] = None,
    optimizer: Annotated[Optional[Optim], typer.Option("--optimizer", help="Optimizer of the timed training step: "
                                                       "adam (default) or sgd.", show_default=False)] = None,
    json_file: Annotated[Optional[Path], typer.Option("--json", help="Write every figure and the conditions as JSON "
                                                      "to this file ('-': stdout, no tables).", show_default=False)] = None,
    sweep: Annotated[Optional[str], typer.Option("--sweep", help="KEY=V1,V2,...: profile at each value of a spec key "
                                                 "path (or seq_len / batch_size), e.g. --sweep seq_len=128,512,2048.",
                                                 show_default=False)] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Where the sweep's PNG goes (default "
                                                 "profile-sweep-KEY.png).", show_default=False)] = None,
    per_layer: Annotated[Optional[bool], typer.Option("--per-layer/--no-per-layer", help="Time each layer (default "
                                                      "on, off for sweeps).", show_default=False)] = None,
    min_run_time: Annotated[Optional[float], typer.Option("--min-run-time", min=1e-4, help="Seconds of timed calls "
                                                          "per measurement, at least.", show_default=False)] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A few calls per measurement: a smoke test, not figures "
                                        "to report.")] = False,
    thorough: Annotated[bool, typer.Option("--thorough", help="Long measurements (≥0.5 s each, until IQR/median < "
                                           "5%) and a 256 MiB copy: figures to report.")] = False,
    set_: SetOpt = None,
    plugins: PluginsOpt = None,
    trust_plugins: TrustPluginsOpt = False,
) -> None:
    """Measure latency, throughput, per-layer times and memory of one or more models, beside exact FLOPs."""
    from ..analysis.compare import default_plot_path, profile_configs
    from .render import err_console, print_json

    settings: dict[str, Any] = {
        "device": device.value if device else None, "mode": mode.value if mode else None,
        "dtype": dtype.value if dtype else None, "compile": compile_, "threads": threads,
        "optimizer": optimizer.value if optimizer else None, "min_run_time": min_run_time,
        "batch_sizes": batch_sizes, "per_layer": per_layer,
    }
    plot_path = (plot or default_plot_path(sweep)) if sweep else None
    to_stdout = json_file is not None and str(json_file) == "-"
    if json_file is not None and not to_stdout and json_file.is_dir():  # fail before minutes of measuring
        from ..errors import UsageError

        raise UsageError(f"--json {json_file} is a directory", hint="give a file path, e.g. --json profile.json")

    if err_console.is_terminal and not to_stdout:
        with err_console.status("profiling…") as status:
            report = profile_configs(configs, settings=settings, overrides=set_ or [], plugins=plugins or [],
                                     trust_plugins=trust_plugins, quick=quick, thorough=thorough, sweep=sweep,
                                     plot=plot_path, on_event=lambda m: status.update(f"profiling: {escape(m)}"))
    else:
        report = profile_configs(configs, settings=settings, overrides=set_ or [], plugins=plugins or [], quick=quick,
                                 thorough=thorough, sweep=sweep, plot=plot_path, trust_plugins=trust_plugins)
    data = report.to_dict()
    if to_stdout:
        print_json(data)
        return
    _render(report)
    if json_file is not None:
        import json

        from ..errors import UsageError

        try:
            json_file.parent.mkdir(parents=True, exist_ok=True)
            json_file.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
        except OSError as e:
            raise UsageError(f"cannot write --json {json_file}: {e.strerror or e}",
                             hint="give a file path in a writable directory") from None
        _console().print(f"JSON written to {json_file}")


# ---------------------------------------------------------------------------------------------
# The view
# ---------------------------------------------------------------------------------------------
def fmt_time(sec: float | None) -> str:
    if sec is None:
        return "—"
    for unit, mul in (("s", 1.0), ("ms", 1e3), ("µs", 1e6)):
        if sec * mul >= 1 or unit == "µs":
            return f"{sec * mul:.3g} {unit}"
    return f"{sec:.3g} s"  # pragma: no cover


def fmt_stats(st: "Stats | None") -> str:
    if st is None:
        return "—"
    return f"{fmt_time(st.median)} ±{st.spread * 50:.0f}%" + ("" if st.settled else " ~")


def _bytes(n: int | None, signed: bool = False) -> str:
    from ..text import human_bytes

    if n is None:
        return "—"
    s = human_bytes(abs(n))
    return ("+" if n > 0 else "−" if n < 0 else "±") + s if signed else s


def _console():
    """The shared console on a terminal; a wide one when piped, so tables keep their natural width."""
    from rich.console import Console

    from .render import console

    return console if console.is_terminal else Console(highlight=False, width=240)


def _render(r: "ProfileReport") -> None:
    console = _console()

    c, m = r.conditions, r.machine
    t = c["timing"]
    for w in r.warnings:  # first: they say how far the figures below can be trusted
        console.print(f"[bold yellow]warning[/]: {escape(w)}")
    console.print(f"[bold]Conditions[/]: {c['device']} ({escape(c['device_name'])}) · {c['dtype']}"
                  f"{' autocast' if c['autocast'] else ''} · {c['threads']} thread(s) · torch {c['torch_version']} · "
                  f"{'torch.compile' if c['compile'] else 'eager'} · optimizer {c['optimizer']}"
                  + (" · [yellow]--quick (smoke test, not for reporting)[/]" if c["quick"] else ""))
    console.print(f"Timing: {t['warmup']} warm-up calls, then ≥{t['min_repeats']} calls and ≥{t['min_run_time']} s "
                  f"until IQR/median < {t['threshold']:.0%} (at most {t['max_run_time']} s); times are medians, "
                  "± half the IQR relative to the median, ~ = did not settle")
    peak = f"; bf16 matmul peak {m.bf16_peak_tflops:.0f} TFLOP/s" if m.bf16_peak_tflops else ""
    console.print(f"Machine: {m.matmul_dtype} matmul {m.matmul_gflops:.1f} GFLOP/s ({m.matmul_size}³), copy "
                  f"{m.copy_gbps:.1f} GB/s → balance {m.balance:.1f} FLOP/B{peak}")
    for note in c.get("notes", []):
        console.print(f"[yellow]note[/]: {escape(note)}")
    for cfg in r.configs:
        if r.sweep is None:
            _render_config(cfg)
        else:  # one line per sweep point; the full figures are in --json
            console.print(f"[bold]{escape(cfg.name)}[/]: {escape(cfg.verdict)}")
    if r.comparison and r.sweep is None:
        _render_comparison(r)
    if r.sweep is not None:
        _render_sweep(r)


def _render_config(cfg: "ConfigProfile") -> None:
    from ..text import human_count

    console = _console()

    console.print()
    unc = f" ([yellow]uncounted: {escape(', '.join(cfg.uncounted))}[/])" if cfg.uncounted else ""
    console.print(f"[bold]{escape(cfg.name)}[/] ({escape(str(cfg.source))}) — {cfg.params:,} params, "
                  f"{human_count(cfg.flops_per_sample)} FLOPs/sample forward{unc}")
    for b in cfg.batches:
        if any(lp.forward or lp.forward_train for lp in b.layers):
            _render_layers(b)
    _render_batches(cfg)
    _render_memory(cfg)
    if cfg.spiking is not None:
        from .spiking_view import render_spiking

        render_spiking(cfg.spiking.to_dict(), console)
    console.print(f"[bold]Verdict[/]: {escape(cfg.verdict)}")
    for note in cfg.notes:
        console.print(f"[yellow]note[/]: {escape(note)}")


def _render_layers(b: "BatchProfile") -> None:
    from ..text import format_info, human_count
    from .render import simple_table

    console = _console()

    train = any(lp.backward for lp in b.layers)
    rows = []
    for lp in b.layers:
        fl = "uncounted" if lp.flops is None else human_count(lp.flops)
        bfl = "uncounted" if lp.backward_flops is None else human_count(lp.backward_flops)
        bound = "—" if lp.bound is None else lp.bound + _efficiency(lp.efficiency)
        rows.append([f"{lp.name} ({lp.type})", f"{lp.params:,}", fl, bfl, fmt_stats(lp.forward or lp.forward_train),
                     fmt_stats(lp.backward), f"{lp.share:.1%}", "—" if lp.gflops is None else f"{lp.gflops:.2f}",
                     "—" if lp.intensity is None else f"{lp.intensity:.1f}", bound])
    share = "share of the training step's layer time" if train else "share of the forward layer time"
    console.print(simple_table(f"Layers at batch {b.batch_size} (Share: {share}; Bound: roofline, % of attainable)",
                               ["Layer (type)", "Params", "FLOPs fwd", "FLOPs bwd", "Fwd", "Bwd", "Share",
                                "GFLOP/s", "FLOP/B", "Bound"], rows, right={1, 2, 3, 4, 5, 6, 7, 8}))
    for lp in b.layers:
        if lp.info:
            console.print(f"  {escape(lp.name)}: {escape(format_info(lp.info))} (per sample)")
    for chk in b.checks:
        console.print(f"  {'[green]✓[/]' if chk.ok else '[yellow]![/]'} {chk.mode}: {escape(chk.note)}")


def _efficiency(e: float | None) -> str:
    """A fraction of the roof, never above 100 %: above it, the roof was measured low (see the warnings)."""
    return "" if e is None else " above roof" if e > 1 else f" {e:.0%}"


def _pct(x: float) -> str:
    return "above ref." if x > 1 else f"{x:.1%}"


def _render_batches(cfg: "ConfigProfile") -> None:
    from .render import simple_table

    console = _console()

    compiled = any(b.compile_time for b in cfg.batches)
    peak = any(b.fraction_of_peak for b in cfg.batches)
    cols = ["Batch", "Inference", "p95", "samples/s", "Train step", "p95", "samples/s", "GFLOP/s inf/train"]
    cols += ["Compile s inf/train"] if compiled else []
    cols += ["% bf16 peak inf/train"] if peak else []
    rows = []
    for b in cfg.batches:
        gf = "/".join("—" if g is None else f"{g:.2f}" for g in (b.inference_gflops, b.train_gflops))
        row = [b.batch_size, fmt_stats(b.inference), fmt_time(b.inference.p95 if b.inference else None),
               "—" if b.inference_samples_per_s is None else f"{b.inference_samples_per_s:,.0f}",
               fmt_stats(b.train), fmt_time(b.train.p95 if b.train else None),
               "—" if b.train_samples_per_s is None else f"{b.train_samples_per_s:,.0f}", gf]
        if compiled:
            row.append("/".join(f"{b.compile_time[k]:.1f}" if k in b.compile_time else "—" for k in ("inference", "train")))
        if peak:
            row.append("/".join(_pct(b.fraction_of_peak[k]) if k in b.fraction_of_peak else "—"
                                for k in ("inference", "train")))
        rows.append(row)
    console.print(simple_table("Latency and throughput (train step: zero_grad, forward, loss, backward, optimizer)",
                               cols, rows, right=set(range(len(cols)))))


def _render_memory(cfg: "ConfigProfile") -> None:
    from .render import simple_table

    console = _console()

    rows = []
    for b in cfg.batches:
        for mr in b.memory:
            for what, split, signed in (("measured", mr.measured, False), ("analytic", mr.analytic, False),
                                        ("Δ", None, True)):
                vals = mr.difference if split is None else split.to_dict()
                cells = [_bytes(vals[k], signed) for k in ("parameters", "gradients", "optimizer_state", "activations",
                                                           "inputs", "peak")]
                first = what == "measured"
                rows.append([b.batch_size if first else "", mr.mode if first else "", what, *cells,
                             (mr.peak_phase or "—") if first else ""])
    if rows:
        console.print(simple_table("Memory (measured: PyTorch's tracking; Δ = measured − analytic)",
                                   ["Batch", "Mode", "", "Params+buffers", "Gradients", "Optimizer", "Activations",
                                    "Inputs", "Peak", "Peak in"], rows, right={0, 3, 4, 5, 6, 7, 8}))


def _render_comparison(r: "ProfileReport") -> None:
    from ..text import human_count
    from .render import simple_table

    console = _console()

    def rate(v: float | None) -> str:
        return "—" if v is None else f"{v:,.0f}"

    rows = [[x["config"], x["batch_size"], f"{x['params']:,}",
             human_count(x["flops_per_sample"]) + (" +uncounted" if x["uncounted"] else ""),
             fmt_time(x["inference_median"]), rate(x["inference_samples_per_s"]),
             fmt_time(x["train_median"]), rate(x["train_samples_per_s"]),
             _bytes(x["train_peak_bytes"] if x["train_peak_bytes"] is not None else x["inference_peak_bytes"]),
             x["bound"] or "—", x["slowest"] or "—"]
            for x in sorted(r.comparison, key=lambda x: x["batch_size"])]  # stable: configs in the order given
    console.print()
    console.print(simple_table("Side by side", ["Config", "Batch", "Params", "FLOPs/sample", "Inference",
                                                "samples/s", "Train step", "samples/s", "Peak memory", "Bound",
                                                "Slowest layer"], rows, right={1, 2, 3, 4, 5, 6, 7, 8}))


def _render_sweep(r: "ProfileReport") -> None:
    from ..text import human_count
    from .render import simple_table

    console = _console()

    sw = r.sweep
    assert sw is not None
    def t(sec: float | None, spread: float | None) -> str:
        return fmt_time(sec) + ("" if spread is None else f" ±{spread * 50:.0f}%")

    rows = [[p.config, p.value, p.batch_size, human_count(p.flops), t(p.inference, p.inference_spread),
             t(p.train, p.train_spread),
             _bytes(p.inference_peak_bytes), _bytes(p.train_peak_bytes)] for p in sw.points]
    console.print()
    title = f"Sweep of {sw.key}" + (f" ({sw.path})" if sw.path != sw.key else "")
    console.print(simple_table(title, ["Config", sw.key, "Batch", "FLOPs", "Inference",
                                                                   "Train step", "Peak inf", "Peak train"], rows,
                               right={1, 2, 3, 4, 5, 6, 7}))
    if sw.plot:
        console.print(f"Plot written to {sw.plot}")


def register(app: typer.Typer) -> None:
    app.command("profile")(profile)
