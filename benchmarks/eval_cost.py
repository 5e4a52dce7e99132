"""What end-of-epoch validation costs on each shipped example config, beside what it must cost.

Each config in ``configs/`` trains for a few epochs (``--set train.epochs=E``, no run directory, no plots)
with its own data, batch sizes and validation split; the engine reports per epoch the step loop's
``time_s`` and the validation's ``val_time_s`` (the forward passes over the validation split under
``torch.inference_mode`` plus its metrics). Printed per config: the medians over epochs 2..E, the share of
the epoch that validation takes, and a lower bound for that share: a forward pass costs about a third of a
training step (forward + backward ≈ 3 forwards), so validating V samples after training on T costs at least
≈ V / (3 T) of the steps' time — more only by per-batch overhead and the metrics.

    nice python benchmarks/eval_cost.py                  # every config (≈ 3 minutes on 2 cores)
    python benchmarks/eval_cost.py --configs cnn_digits --epochs 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(config: Path, epochs: int, threads: int | None) -> dict:
    import layerforge as lf

    overrides = [f"train.epochs={epochs}", "train.plots=false", "train.early_stopping.patience=null"]
    if threads:
        overrides.append(f"train.threads={threads}")
    seen = {}

    from layerforge.engine.events import Callback

    class Info(Callback):
        def on_start(self, info) -> None:
            seen.update(train=info.train_samples, val=info.val_samples, steps=info.steps_per_epoch)

    result = lf.train(str(config), overrides=overrides, save=False, callbacks=[Info()])
    kept = result.history[1:] or result.history
    med = statistics.median
    train_s, val_s = med(r["time_s"] for r in kept), med(r.get("val_time_s", 0.0) for r in kept)
    return {**seen, "train_s": train_s, "val_s": val_s, "share": val_s / (train_s + val_s),
            "bound": seen["val"] / (3 * seen["train"] + seen["val"]) if seen.get("train") else 0.0}


def table(rows: dict[str, dict]) -> str:
    lines = ["| config | train / val samples | steps/epoch | steps s/epoch | validation s/epoch | validation ÷ epoch "
             "| forward-only bound |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| `{name}` | {r['train']:,} / {r['val']:,} | {r['steps']} | {r['train_s']:.3f} | {r['val_s']:.4f} | "
                     f"{r['share']:.1%} | {r['bound']:.1%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="*", help="config names (default: every configs/**/*.yaml with a val split)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per config (the first is warm-up)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the config's)")
    args = p.parse_args(argv)
    paths = sorted((ROOT / "configs").rglob("*.yaml"))
    if args.configs:
        paths = [q for q in paths if q.stem in args.configs]
    load = os.getloadavg()[0]
    rows = {}
    for path in paths:
        r = measure(path, args.epochs, args.threads)
        if r.get("val"):
            rows[str(path.relative_to(ROOT / "configs").with_suffix(""))] = r
        print(f"{path.stem} done", file=sys.stderr, flush=True)
    import torch

    print(table(rows))
    print()
    print(f"medians of epochs 2..{args.epochs}; torch {torch.__version__}, torch threads "
          f"{args.threads or torch.get_num_threads()}, {os.cpu_count()} logical CPUs, load average (1 min) "
          f"{load:.1f} before and {os.getloadavg()[0]:.1f} after")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
