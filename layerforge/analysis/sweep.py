"""``--sweep key=v1,v2,...``: profile a config at each value of one spec setting (set through the ``--set``
override mechanism) to see how time and memory grow with it; a table and a log-log PNG plot.

``key`` is a spec key path (``model.layers.1.units``) or one of two shorthands:

- ``seq_len``: the first axis of every sequence input, i.e. ``model.input_shape.0`` for a ``(T, F)`` input
  or a ``(T,)`` input of token ids (``model.input_shape.<name>.0`` for each such named input);
- ``batch_size``: the batch sizes themselves (no spec change).

Several key paths joined by ``+`` are all set to each value, for settings that must change together
(``model.layers.proj.units+model.layers.q.qubits=2,4,6``: a circuit and the layer that feeds it).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from ..errors import UsageError
from .report import ConfigProfile, SweepPoint, SweepResult

if TYPE_CHECKING:
    from ..graph import Graph
    from ..spec.schema import Spec

ALIASES = ("seq_len", "batch_size")


def parse_sweep(text: str) -> tuple[str, list[str]]:
    """``"seq_len=128,512"`` → ("seq_len", ["128", "512"])."""
    key, sep, rest = text.partition("=")
    key = key.strip()
    values = [v.strip() for v in rest.split(",") if v.strip()]
    if not sep or not key or not values:
        raise UsageError(f"bad --sweep '{text}'", hint="write --sweep KEY=V1,V2,... e.g. --sweep seq_len=128,512,2048 "
                         "or --sweep model.layers.0.units=64,256")
    if len(set(values)) != len(values):
        raise UsageError(f"--sweep '{text}' repeats a value", hint="list each value once")
    if key == "batch_size":
        for v in values:
            if not v.isdigit() or int(v) < 1:
                raise UsageError(f"--sweep batch_size: '{v}' is not a positive integer")
    return key, values


def sweep_overrides(key: str, value: str, spec: "Spec", graph: "Graph") -> list[str]:
    """The ``--set`` items that put ``value`` at ``key`` for this spec."""
    if key == "batch_size":
        return []
    if key != "seq_len":
        return [f"{k}={value}" for k in key.split("+")]  # a+b: several keys set to the same value
    ids = graph.integer_inputs()  # a rank-1 input is a sequence when it holds token ids
    seqs = [n for n, s in graph.inputs.items() if len(s) == 2 or (len(s) == 1 and n in ids)]
    if not seqs:
        shapes = ", ".join(f"{n} {list(s)}" for n, s in graph.inputs.items())
        raise UsageError(f"--sweep seq_len: {spec.name} has no sequence input ((T, F), or (T,) token ids); its inputs: {shapes}",
                         hint="sweep an explicit key path instead, e.g. --sweep model.input_shape.1=32,64")
    if isinstance(spec.model.input_shape, dict):
        return [f"model.input_shape.{n}.0={value}" for n in seqs]
    return [f"model.input_shape.0={value}"]


def sweep_path(key: str, spec: "Spec", graph: "Graph") -> str:
    if key == "batch_size":
        return "batch size"
    return ", ".join(o.partition("=")[0] for o in sweep_overrides(key, "0", spec, graph))


def points_of(cfg: ConfigProfile, label: str, value: str | None) -> list[SweepPoint]:
    out = []
    for b in cfg.batches:
        mem = {m.mode: m.measured.peak for m in b.memory}
        out.append(SweepPoint(label, value if value is not None else str(b.batch_size), b.batch_size, b.flops,
                              b.inference.median if b.inference else None, b.train.median if b.train else None,
                              mem.get("inference"), mem.get("train"),
                              b.inference.spread if b.inference else None, b.train.spread if b.train else None))
    return out


def _numeric(values: Sequence[str]) -> list[float] | None:
    try:
        xs = [float(v) for v in values]
    except ValueError:
        return None
    return xs if all(x > 0 for x in xs) else None


def plot_sweep(result: SweepResult, path: str, title: str | None = None) -> str:
    """Time and peak memory against the swept value (log axes), one line per config (and batch size)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs_num = _numeric(result.values)
    pos = {v: (xs_num[i] if xs_num else i + 1) for i, v in enumerate(result.values)}
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 4.8))
    series: dict[tuple[str, int], list[SweepPoint]] = {}
    for p in result.points:
        series.setdefault((p.config, p.batch_size), []).append(p)
    batches = {bs for _, bs in series}
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lo_t = None
    for i, ((cfg, bs), pts) in enumerate(series.items()):
        c = colors[i % len(colors)]
        label = cfg if len(batches) == 1 or result.key == "batch_size" else f"{cfg} (batch {bs})"
        pts = sorted(pts, key=lambda p: pos[p.value])
        x = [pos[p.value] for p in pts]
        for attr, style, what in (("inference", "-", "inference"), ("train", "--", "train step")):
            y = [getattr(p, attr) * 1e3 if getattr(p, attr) is not None else None for p in pts]
            if any(v is not None for v in y):
                ax_t.plot(x, y, style, marker="o", color=c, label=f"{label} · {what}")
                lo_t = min([v for v in y if v is not None] + ([lo_t] if lo_t else []))
        for attr, style in (("inference_peak_bytes", "-"), ("train_peak_bytes", "--")):
            y = [getattr(p, attr) / 2**20 if getattr(p, attr) is not None else None for p in pts]
            if any(v is not None for v in y):
                ax_m.plot(x, y, style, marker="o", color=c, label=f"{label} · {'inference' if 'inf' in attr else 'train'}")
    if xs_num and lo_t and len(xs_num) > 1:
        x0, x1 = min(xs_num), max(xs_num)
        for k, lab in ((1, "∝ n"), (2, "∝ n²")):
            ax_t.plot([x0, x1], [lo_t, lo_t * (x1 / x0) ** k], ":", color="grey", linewidth=1, label=lab)
    for ax, ylab in ((ax_t, "median time per batch (ms)"), (ax_m, "peak memory (MiB, measured)")):
        ax.set_xlabel(result.key)
        ax.set_ylabel(ylab)
        if xs_num:
            from matplotlib.ticker import NullFormatter

            ax.set_xscale("log")
            ax.set_xticks(xs_num, list(result.values))
            ax.xaxis.set_minor_formatter(NullFormatter())
        else:
            ax.set_xticks(list(pos.values()), list(pos))
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    ax_t.legend(fontsize=7)
    ax_m.legend(fontsize=7)
    fig.suptitle(title or f"layerforge profile --sweep {result.key}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
