"""Quantum-inspired layers on the shipped data: the tables and the plot of docs/quantum.md.

1. The digits MLP (configs/mlp_digits.yaml) against the same MLP with its hidden 256→256 dense layer
   stored as a tensor train (configs/tt_mlp_digits.yaml) at TT ranks 2, 4, 8, 16: parameters,
   compression of that layer, validation accuracy (mean and range over seeds). Plot: accuracy against
   the layer's parameters.
2. The hybrid iris classifier (configs/hybrid_iris.yaml: dense → 4-qubit circuit → dense, 59 parameters)
   against a dense 4-7-3 MLP with the same parameter count and training settings: validation accuracy
   and training time per epoch. The two are trained in interleaved rounds and the per-epoch times
   compared by their medians, so the ratio holds on a busy machine.

    nice python benchmarks/quantum_layers.py --plot docs/quantum_tt_digits.png    # ~10 min on 2 busy cores
    python benchmarks/quantum_layers.py --smoke                                    # a few seconds, no figures
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RANKS = [2, 4, 8, 16]


def _train(cfg: Path | dict, overrides: list[str]) -> dict:
    import layerforge as lf

    res = lf.train(cfg, overrides=["train.plots=false", *overrides], save=False)
    hist = res.history
    return {"val_accuracy": hist[-1]["val_accuracy"], "best_val_accuracy": max(r["val_accuracy"] for r in hist),
            "epoch_times": [r["time_s"] for r in hist], "epochs": len(hist)}


def _hidden(cfg: Path | dict, overrides: list[str], index: int) -> tuple[int, int, dict]:
    """(total params, params of layer ``index``, its extra info) from the summary (no training)."""
    import layerforge as lf

    s = lf.summarize(cfg, overrides=overrides)
    row = s.layers[index]
    return s.total_params, row.params, row.info


def tt_digits(seeds: list[int], short: list[str], ranks: list[int]) -> list[dict]:
    dense_cfg, tt_cfg = ROOT / "configs" / "mlp_digits.yaml", ROOT / "configs" / "tt_mlp_digits.yaml"
    variants = [("dense 256→256", dense_cfg, [])] + [(f"tt_dense, rank {r}", tt_cfg, [f"model.layers.tt.ranks={r}"]) for r in ranks]
    rows = []
    for label, cfg, over in variants:
        total, hidden, info = _hidden(cfg, over, 2)
        runs = [_train(cfg, [*over, *short, f"seed={s}"]) for s in seeds]
        acc = [r["val_accuracy"] for r in runs]
        rows.append({"label": label, "rank": None if not over else int(over[0].split("=")[1]), "total": total,
                     "hidden": hidden, "compression": info.get("compression", 1.0), "acc": acc,
                     "epoch_s": statistics.median(t for r in runs for t in r["epoch_times"])})
        print(f"{label:18s} hidden {hidden:7,d}  val acc {statistics.mean(acc):.4f} {acc}", file=sys.stderr, flush=True)
    return rows


DENSE_IRIS = {"name": "dense_iris_59", "seed": 0,
              "model": {"input_shape": [4], "layers": [{"type": "dense", "units": 7}, {"type": "dense", "units": 3}]}}


def hybrid_iris(seeds: list[int], short: list[str]) -> list[dict]:
    import copy

    import yaml

    hybrid_cfg = ROOT / "configs" / "hybrid_iris.yaml"
    dense = copy.deepcopy(DENSE_IRIS)
    shared = yaml.safe_load(hybrid_cfg.read_text())
    dense["data"], dense["train"] = shared["data"], shared["train"]  # the same data split and training settings
    runs: dict[str, list[dict]] = {"hybrid": [], "dense": []}
    for s in seeds:  # interleaved rounds
        runs["hybrid"].append(_train(hybrid_cfg, [*short, f"seed={s}"]))
        runs["dense"].append(_train(dense, [*short, f"seed={s}"]))
    rows = []
    for key, cfg, label in (("hybrid", hybrid_cfg, "hybrid: dense 4→4, 4-qubit circuit (2 layers), dense 4→3"),
                            ("dense", dense, "dense MLP 4-7-3")):
        total, _, _ = _hidden(cfg, [], 0)
        acc = [r["val_accuracy"] for r in runs[key]]
        best = [r["best_val_accuracy"] for r in runs[key]]
        rows.append({"label": label, "params": total, "acc": acc, "best": best,
                     "epoch_s": statistics.median(t for r in runs[key] for t in r["epoch_times"][1:] or r["epoch_times"])})
        print(f"{label}: params {total}  val acc {acc}", file=sys.stderr, flush=True)
    return rows


def _acc(xs: list[float]) -> str:
    m = statistics.mean(xs)
    return f"{m:.1%}" if len(xs) == 1 else f"{m:.1%} ({min(xs):.1%}–{max(xs):.1%})"


def tt_table(rows: list[dict]) -> str:
    dense = rows[0]
    lines = ["| hidden layer | its parameters | compression | model parameters | val accuracy (mean, range) | Δ vs dense |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        delta = statistics.mean(r["acc"]) - statistics.mean(dense["acc"])
        lines.append(f"| {r['label']} | {r['hidden']:,} | {r['compression']:.1f}× | {r['total']:,} | {_acc(r['acc'])} | "
                     f"{'—' if r is dense else f'{delta * 100:+.1f} pt'} |")
    return "\n".join(lines)


def iris_table(rows: list[dict]) -> str:
    base = rows[1]["epoch_s"]
    lines = ["| model | parameters | val accuracy, last epoch (mean, range) | best epoch | time per epoch (median) | ratio |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['params']} | {_acc(r['acc'])} | {_acc(r['best'])} | {r['epoch_s'] * 1e3:.1f} ms | "
                     f"{r['epoch_s'] / base:.1f}× |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4), dpi=110)
    tt = [r for r in rows if r["rank"] is not None]
    for r in rows:
        ax.scatter([r["hidden"]] * len(r["acc"]), [a * 100 for a in r["acc"]], s=10, color="grey", alpha=0.5)
    ax.plot([r["hidden"] for r in tt], [statistics.mean(r["acc"]) * 100 for r in tt], "o-", label="tt_dense (mean over seeds)")
    for r in tt:
        ax.annotate(f"r={r['rank']}, {r['compression']:.0f}×", (r["hidden"], statistics.mean(r["acc"]) * 100),
                    textcoords="offset points", xytext=(5, -12), fontsize=8)
    d = rows[0]
    ax.plot([d["hidden"]], [statistics.mean(d["acc"]) * 100], "s", color="C3", label="dense 256→256")
    ax.set_xscale("log")
    ax.set_xlabel("parameters of the hidden 256→256 layer (log)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("Digits MLP: hidden dense layer vs tensor train")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="seeds per model (default 3)")
    ap.add_argument("--plot", type=Path, default=None, help="write the TT accuracy plot (PNG) here")
    ap.add_argument("--smoke", action="store_true", help="one seed, one epoch on 160 samples, rank 2: checks the script runs")
    args = ap.parse_args()
    import torch

    seeds = [0] if args.smoke else list(range(args.seeds))
    short = ["train.epochs=1", "data.num_samples=160"] if args.smoke else []
    tt_rows = tt_digits(seeds, short, [2] if args.smoke else RANKS)
    iris_rows = hybrid_iris(seeds, short)
    if args.plot:
        plot(tt_rows, args.plot)
    cmd = "python benchmarks/quantum_layers.py " + " ".join(sys.argv[1:])
    print(f"conditions: torch {torch.__version__}, {torch.get_num_threads()} torch threads, {platform.processor() or platform.machine()}, "
          f"seeds {seeds}{', SMOKE (1 epoch, not figures)' if args.smoke else ''}; command: {cmd}\n")
    print("### Tensor-train hidden layer, digits MLP\n")
    print(tt_table(tt_rows) + "\n")
    print("### Hybrid quantum-classical iris classifier vs a dense MLP of the same size\n")
    print(iris_table(iris_rows))


if __name__ == "__main__":
    main()
