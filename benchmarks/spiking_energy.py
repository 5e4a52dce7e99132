"""The spiking digits CNN beside the plain one: accuracy, firing rates, SOPs vs MACs and the energy
estimate, printed as the markdown tables of docs/spiking.md.

Trains configs/cnn_digits.yaml and configs/snn_digits.yaml as shipped (or reads runs you already
trained), then measures both on the whole validation split with layerforge.analysis.spiking: for every
weight layer its MACs and the density of its input (ReLU outputs that are not 0 for the CNN, spikes for
the SNN), and for the SNN its SOPs (spikes × fan-out). Energy: 4.6 pJ per MAC, 0.9 pJ per accumulate
(45 nm, Horowitz 2014), arithmetic only: memory traffic is ignored (see docs/spiking.md).

    nice python benchmarks/spiking_energy.py                      # train both (runs/spiking_energy/), print
    python benchmarks/spiking_energy.py --snn RUN --cnn RUN       # runs you trained already
    python benchmarks/spiking_energy.py --smoke                   # one short epoch each, in a temp dir
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ["train.epochs=1", "data.num_samples=160", "model.layers.0.steps=2"]


def train(config: str, out: Path, overrides: list[str]) -> Path:
    import layerforge as lf

    print(f"training {config} → {out}", file=sys.stderr, flush=True)
    lf.train(ROOT / "configs" / config, overrides=["train.plots=false", *overrides], out=out)
    return out


def history(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def measure_run(run: Path) -> dict[str, Any]:
    """Accuracy (best val, test), training time and the spike/operation report on the whole val split."""
    import layerforge as lf
    from layerforge.analysis.spiking import spike_report
    from layerforge.engine.rundir import RunDir

    hist = [r for r in history(run) if "val_accuracy" in r]
    best = max(hist, key=lambda r: r["val_accuracy"])
    test = lf.evaluate(run, split="test", plot=False).metrics["accuracy"]
    rep = spike_report(run, samples=10**9, split="val")
    spec, graph = RunDir.open(run).load_spec(train_rules=False)  # the run's spec, as evaluate reads it
    params = lf.summarize((spec, graph)).total_params  # counted on the meta device
    return {"name": spec.name, "params": params, "best_val": best["val_accuracy"], "best_epoch": best["epoch"],
            "epochs": len(hist), "test": test, "train_s": sum(r["time_s"] for r in hist), "report": rep}


def pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def count(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}"


def uj(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f} µJ"


def tables(cnn: dict[str, Any], snn: dict[str, Any]) -> str:
    c, s = cnn["report"], snn["report"]
    steps = max((r.steps for r in s.layers), default=1)
    out = ["| model | T | params | best val accuracy (epoch) | test accuracy | weight-layer MACs/sample | "
           "SOPs/sample | MACs/sample on real values | neuron updates/sample | energy/sample (estimate) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    out.append(f"| {cnn['name']} (ReLU) | 1 | {cnn['params']:,} | {pct(cnn['best_val'])} ({cnn['best_epoch']}) | "
               f"{pct(cnn['test'])} | {count(c.ann_macs)} | — | {count(c.ann_macs)} | — | {uj(c.ann_energy_uj)} |")
    out.append(f"| {snn['name']} (LIF) | {steps} | {snn['params']:,} | {pct(snn['best_val'])} ({snn['best_epoch']}) | "
               f"{pct(snn['test'])} | {count(s.ann_macs)} | {count(s.sops)} | {count(s.snn_macs)} | "
               f"{count(s.neuron_updates)} | {uj(s.snn_energy_uj)} |")
    skip = sum(w.ann_macs * (w.input_density or 0) for w in c.weight_layers)  # MACs on non-zero inputs only
    out += ["", f"Energy ratio CNN ÷ SNN: **{c.ann_energy_uj / s.snn_energy_uj:.2f}×** "
            f"(SNN: {count(s.sops)} SOPs × 0.9 pJ + ({count(s.snn_macs)} + {count(s.neuron_updates)}) MACs × 4.6 pJ; "
            f"CNN: {count(c.ann_macs)} MACs × 4.6 pJ). A CNN that skipped its zero activations would do "
            f"{count(skip)} MACs ({uj(skip * 4.6e-6)}, ratio {skip * 4.6e-6 / s.snn_energy_uj:.2f}×).", ""]
    out += ["| weight layer (CNN / SNN) | MACs/sample (one pass) | CNN input: non-zero | SNN input: spikes of | "
            "spikes per input per step | SOPs/sample (T steps) | SOPs ÷ MACs | CNN energy | SNN energy |",
            "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for cw, sw in zip(c.weight_layers, s.weight_layers):
        ratio = "—" if sw.sops is None else f"{sw.sops / sw.ann_macs:.3f}"
        snn_ops = count(sw.sops) if sw.spike_input else f"{count(sw.snn_macs)} MACs"
        out.append(f"| {cw.layer} / {sw.layer} | {count(cw.ann_macs)} | {pct(cw.input_density or 0)} | "
                   f"{sw.source or 'real values'} | {(sw.input_density or 0):.3f} | {snn_ops} | {ratio} | "
                   f"{uj(cw.ann_energy_pj * 1e-6)} | {uj((sw.snn_energy_pj or 0) * 1e-6)} |")
    out += ["", "| spiking layer | neurons (per step) | firing rate (spikes per neuron per step) | spikes/sample "
            f"({steps} steps) |", "|---|---:|---:|---:|"]
    for r in s.layers:
        out.append(f"| {r.layer} ({r.type}) | {r.neurons:,} | {r.firing_rate:.3f} | {count(r.spikes)} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--snn", type=Path, help="a trained run of configs/snn_digits.yaml (default: train one)")
    p.add_argument("--cnn", type=Path, help="a trained run of configs/cnn_digits.yaml (default: train one)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "spiking_energy", help="where new runs go")
    p.add_argument("--smoke", action="store_true", help="train each for one short epoch in a temp dir (a check)")
    args = p.parse_args(argv)
    import torch

    tmp = tempfile.TemporaryDirectory() if args.smoke else None
    out = Path(tmp.name) if tmp else args.out
    sets = SMOKE if args.smoke else []
    cnn_run = args.cnn or train("cnn_digits.yaml", out / "cnn_digits", [s for s in sets if "layers" not in s])
    snn_run = args.snn or train("snn_digits.yaml", out / "snn_digits", sets)
    cnn, snn = measure_run(cnn_run), measure_run(snn_run)
    print(tables(cnn, snn))
    print()
    rep = snn["report"]
    print(f"Measured on the {rep.samples} samples of the validation split; training time (noisy, shared machine): "
          f"CNN {cnn['train_s']:.0f} s for {cnn['epochs']} epochs, SNN {snn['train_s']:.0f} s for {snn['epochs']} "
          f"epochs; torch {torch.__version__}, {torch.get_num_threads()} thread(s), {platform.processor() or platform.machine()}; "
          f"runs: {cnn_run}, {snn_run}")
    if tmp:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
