"""Architecture search on the digits: configs/cnn_digits_search.yaml against configs/cnn_digits.yaml.

The search space (widths, depth, kernel sizes, dropout, learning rate) is around the shipped CNN, within a
budget of half its forward FLOPs (a sample over it is pruned before training); trials train 15 epochs like
the baseline (``--epochs`` sets both, for a short budget), with median pruning from their per-epoch validation accuracy, on 2 CPU threads, one worker.
For each seed, a TPE study and a random-sampling study run back to back (interleaved, so a busy machine
slows both alike), each of ``--trials`` trials. Printed, as the markdown tables of docs/search.md:

- the baseline (trained here, same seed): validation and test accuracy, FLOPs, parameters, wall time;
- per study: wall time (first trial's start to last trial's end), trials complete / pruned by the median rule / over budget, the best trial's
  validation accuracy, FLOPs (and its share of the baseline's) and test accuracy (its checkpoint evaluated on
  the test split that neither the search nor the baseline looked at), and the smallest trial that matches
  the baseline's validation accuracy;
- TPE against random: the best validation accuracy found within the first 10, 20 and all trials, per seed
  and as a mean over seeds (equal trial counts).

Also draws accuracy vs FLOPs of every trial of the first TPE study, with the baseline as a star
(docs/search/digits_pareto.png unless --smoke).

    nice python benchmarks/search_digits.py                               # 40 trials, seeds 0 1 2, tpe + random
    nice python benchmarks/search_digits.py --seeds 0 --samplers tpe      # one study
    nice python benchmarks/search_digits.py --trials 8 --epochs 5 --seeds 0 --samplers tpe   # docs' short budget
    # the same comparison, the studies of a seed at the same time in two processes, then the tables:
    nice python benchmarks/search_digits.py --out D --seeds 0 --samplers tpe &
    nice python benchmarks/search_digits.py --out D --seeds 0 --samplers random; wait
    python benchmarks/search_digits.py --out D --seeds 0                  # (resumes both: prints the tables)
    python benchmarks/search_digits.py --smoke                            # 1 trial of 1 epoch per study, no figures
"""
from __future__ import annotations

import argparse
import datetime as _dt
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "configs" / "cnn_digits.yaml"
SEARCH = ROOT / "configs" / "cnn_digits_search.yaml"
PLOT = ROOT / "docs" / "search" / "digits_pareto.png"


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=40)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--samplers", nargs="+", default=["tpe", "random"], choices=["tpe", "random"])
    p.add_argument("--epochs", type=int, default=15, help="epochs of the baseline and of each trial (15: the "
                   "shipped configs'; fewer for a short budget, the comparison stays at equal epochs)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (the machine of the figures: 2 cores)")
    p.add_argument("--out", type=Path, default=None, help="where the runs go (default: a temporary folder)")
    p.add_argument("--smoke", action="store_true", help="1 trial of 1 epoch per study: checks the script, no figures")
    return p.parse_args()


def baseline(out: Path, smoke: bool, epochs: int) -> dict[str, Any]:
    """The shipped CNN trained here (or, with an --out that has it, the run trained there before)."""
    import layerforge as lf
    from layerforge.engine.rundir import RunDir, run_summary

    run_dir = out / "baseline"
    if not (run_dir / "run.json").is_file():
        over = [f"train.epochs={1 if smoke else epochs}", "train.plots=false"]
        t0 = time.perf_counter()
        lf.train(BASELINE, overrides=over, out=run_dir)
        (out / "baseline.wall").write_text(f"{time.perf_counter() - t0:.1f}")
    best = run_summary(RunDir(run_dir))["best"]
    summary = lf.summarize(BASELINE)
    test = lf.evaluate(run_dir, split="test", plot=False).metrics["accuracy"]
    return {"val_accuracy": best["val_accuracy"], "test_accuracy": test, "flops": summary.flops,
            "params": summary.total_params, "wall_s": float((out / "baseline.wall").read_text())}


def study(sampler: str, seed: int, trials: int, epochs: int, out: Path, smoke: bool, base: dict[str, Any]) -> dict[str, Any]:
    """One study (continued where an earlier run of the script with the same --out left it: several runs of
    the script may share an --out, e.g. one per sampler at the same time, and a last one prints them all)."""
    import layerforge as lf

    name = f"{sampler}-s{seed}"
    over = [f"train.out={out / 'runs'}", f"search.sampler.name={sampler}", f"search.seed={seed}",
            f"train.epochs={1 if smoke else epochs}"]
    resume = (out / "runs" / "cnn_digits_search" / f"search-{name}" / "journal.log").is_file()
    result = lf.search(SEARCH, overrides=over, trials=trials, study=name, resume=resume)
    times = [(t.started, t.ended) for t in result.trials if t.started and t.ended]
    wall = (_dt.datetime.fromisoformat(max(e for _, e in times))
            - _dt.datetime.fromisoformat(min(s for s, _ in times))).total_seconds() if times else 0.0
    done = sorted((t for t in result.trials if t.state == "complete"), key=lambda t: t.number)
    curve = {}
    for k in (10, 20, trials):
        within = [t.values[0] for t in done if t.number < k]
        curve[k] = max(within) if within else None
    best = result.best[0] if result.best else None
    matching = [t for t in done if t.values[0] >= base["val_accuracy"]]
    smallest = min(matching, key=lambda t: (t.flops, t.number)) if matching else None
    test = lf.evaluate(best.run_dir, split="test", plot=False).metrics["accuracy"] if best else None
    return {"sampler": sampler, "seed": seed, "wall_s": wall, "counts": result.counts, "best": best,
            "test_accuracy": test, "smallest": smallest, "curve": curve, "result": result}


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f} %"


def mflops(v: float | None) -> str:
    return "-" if v is None else f"{v / 1e6:.3f}"


def main() -> None:
    args = parse()
    import torch

    torch.set_num_threads(args.threads)
    trials = 1 if args.smoke else args.trials
    out = args.out or Path(tempfile.mkdtemp(prefix="lf-search-digits-"))
    started = time.perf_counter()
    base = baseline(out, args.smoke, args.epochs)
    studies = [study(s, seed, trials, args.epochs, out, args.smoke, base) for seed in args.seeds for s in args.samplers]

    print(f"search_digits: {trials} trials per study, {1 if args.smoke else args.epochs} epochs each, samplers {' '.join(args.samplers)}, seeds "
          f"{' '.join(map(str, args.seeds))}; {args.threads} torch threads, 1 worker; {platform.processor() or 'cpu'}, "
          f"torch {torch.__version__}; {_dt.date.today()}; total {time.perf_counter() - started:.0f} s; runs in {out}")
    print()
    print("| model | val accuracy | test accuracy | MFLOPs/sample | params | wall time |")
    print("|---|---|---|---|---|---|")
    print(f"| configs/cnn_digits.yaml (baseline) | {pct(base['val_accuracy'])} | {pct(base['test_accuracy'])} | "
          f"{mflops(base['flops'])} | {base['params']:,} | {base['wall_s']:.0f} s |")
    for s in studies:
        b = s["best"]
        if b is not None:
            print(f"| best of {s['sampler']} seed {s['seed']} (trial {b.number}) | {pct(b.values[0])} | "
                  f"{pct(s['test_accuracy'])} | {mflops(b.flops)} ({b.flops / base['flops']:.2f}×) | {b.params:,} | "
                  f"{b.time_s:.0f} s |")
    print()
    print("| study | wall time | complete | pruned (median) | over budget | invalid | best val accuracy | "
          "its MFLOPs | smallest trial ≥ baseline val accuracy |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s in studies:
        c, b, m = s["counts"], s["best"], s["smallest"]
        small = f"trial {m.number}: {pct(m.values[0])} at {mflops(m.flops)} MFLOPs ({m.flops / base['flops']:.2f}×)" \
            if m is not None else "none"
        print(f"| {s['sampler']} seed {s['seed']} | {s['wall_s'] / 60:.1f} min | {c['complete']} | {c['pruned']} | "
              f"{c['over_budget']} | {c['invalid']} | {pct(b.values[0] if b else None)} | "
              f"{mflops(b.flops if b else None)} | {small} |")
    if len(args.samplers) == 2:
        print()
        ks = sorted({k for k in (10, 20) if k < trials} | {trials})
        print("| sampler | " + " | ".join(f"best val accuracy in the first {k} trials" for k in ks) + " |")
        print("|---|" + "---|" * len(ks))
        for name in args.samplers:
            mine = [s for s in studies if s["sampler"] == name]
            cells = []
            for k in ks:
                vals = [s["curve"][k] for s in mine if s["curve"][k] is not None]
                per_seed = ", ".join(pct(s["curve"][k]) for s in mine)
                cells.append(f"{pct(statistics.mean(vals)) if vals else '-'} (seeds: {per_seed})")
            print(f"| {name} | " + " | ".join(cells) + " |")
    first = next((s for s in studies if s["sampler"] == "tpe"), studies[0] if studies else None)
    if first is not None:
        from layerforge.search.objective import Goal
        from layerforge.search.report import pareto_plot

        path = out / "digits_pareto.png" if args.smoke else PLOT
        path.parent.mkdir(parents=True, exist_ok=True)
        done = [t for t in first["result"].trials if t.state == "complete"]
        pareto_plot(done, [Goal("val_accuracy", "max")], path,
                    extra={"configs/cnn_digits.yaml": (base["flops"], base["val_accuracy"])},
                    title=f"digits: val accuracy vs FLOPs, {first['sampler']} seed {first['seed']} "
                          f"({len(done)} complete trials)")
        print(f"\nplot: {path}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
