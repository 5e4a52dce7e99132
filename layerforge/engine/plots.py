"""Loss/metric curves as PNG (matplotlib, Agg backend).

Importing matplotlib and drawing takes about half a second, more than the rest of a small run's own
overhead, so the trainer draws the curves in a detached background process (``python -m
layerforge.engine.plots RUN_DIR``) and returns at once; :func:`write_plots` draws in-process.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from .rundir import NOT_METRICS, RunDir


def write_plots(run: RunDir, history: list[dict[str, Any]]) -> list[Path]:
    """Loss and metric curves (train vs val) as PNG, one file per quantity; returns the files written."""
    if not history:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run.plots.mkdir(exist_ok=True)
    keys = [k for k in history[0] if isinstance(history[0][k], (int, float)) and not k.startswith("val_")
            and k not in NOT_METRICS]
    written = []
    epochs = [r["epoch"] for r in history]
    for k in keys:
        fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
        ax.plot(epochs, [r.get(k) for r in history], marker="o", ms=3, label=f"train {k}")
        if any(f"val_{k}" in r for r in history):
            ax.plot(epochs, [r.get(f"val_{k}") for r in history], marker="o", ms=3, label=f"val {k}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(k)
        if k == "loss" and all(isinstance(r.get(k), (int, float)) and r.get(k) > 0 for r in history):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        out = run.plots / f"{k}.png"
        _save(fig, out)
        plt.close(fig)
        written.append(out)
    if any("lr" in r for r in history):
        fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
        ax.plot(epochs, [r.get("lr") for r in history], marker="o", ms=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel("learning rate (end of epoch)")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        _save(fig, run.plots / "lr.png")
        plt.close(fig)
        written.append(run.plots / "lr.png")
    return written


def _save(fig: Any, out: Path) -> None:
    """Save atomically (a reader never sees half a PNG)."""
    tmp = out.with_name(f".{out.name}.tmp")
    fig.savefig(tmp, format="png")
    tmp.replace(out)


def start_plots(run: RunDir) -> "subprocess.Popen[bytes]":
    """Draw the run's curves from its metrics.jsonl in a detached process (returns its handle)."""
    return subprocess.Popen([sys.executable, "-m", "layerforge.engine.plots", str(run.path)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    run = RunDir(Path(args[0]))
    history, _ = run.read_metrics()
    write_plots(run, history)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a subprocess
    raise SystemExit(main())
