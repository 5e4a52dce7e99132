"""The digits CNN exported to ONNX: the same test accuracy as ``layerforge evaluate``, and its latency per
batch in onnxruntime beside PyTorch eager (and the pt2 program).

The run is configs/cnn_digits.yaml (trained here unless a RUN_DIR is given), exported with the input
standardisation inside the graph, so all three take the raw test images:

    torch eager   ``lf.load_run(run).predictor()`` under ``torch.inference_mode()``
    pt2           ``torch.export.load(model.pt2).module()`` (the exported program, run by PyTorch)
    onnxruntime   ``InferenceSession(model.onnx)``, CPU provider, the same intra-op threads as torch (--threads)

Accuracy: argmax over the test split (raw inputs) in each runtime, beside ``lf.evaluate(run)``. Latency:
rounds interleave the runtimes (one batch each per round, after warm-up), median per batch size, so the
noise of a shared machine falls on all alike; the ratio is eager ÷ runtime (> 1: faster than eager).

    nice python benchmarks/export_latency.py [RUN_DIR] [--threads 1]    # ≈ 1 minute on 2 quiet cores
    python benchmarks/export_latency.py --smoke            # 1 training epoch, 3 rounds, no meaningful figures
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import layerforge as lf  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", nargs="?", help="a trained cnn_digits run (default: train one in a temp folder)")
    ap.add_argument("--smoke", action="store_true", help="a tiny run: checks the script works, figures mean nothing")
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads for torch and onnxruntime alike "
                    "(default 1: on a shared machine more threads measure the contention more than the runtime)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import onnxruntime as ort
    import torch

    from layerforge.build import data_facts
    from layerforge.data import load_data

    rounds = 3 if args.smoke else args.rounds
    tmp = Path(tempfile.mkdtemp(prefix="lf_export_bench_"))
    run_dir = Path(args.run_dir) if args.run_dir else tmp / "run"
    if not args.run_dir:
        overrides = ["train.plots=false", "train.device=cpu"] + (["train.epochs=1"] if args.smoke else [])
        lf.train(ROOT / "configs" / "cnn_digits.yaml", overrides=overrides, out=run_dir)
    onnx_res = lf.export_run(run_dir, "onnx", out=tmp / "model.onnx")
    pt2_res = lf.export_run(run_dir, "pt2", out=tmp / "model.pt2")

    run = lf.load_run(run_dir)
    test = load_data(run.spec, data_facts(run.graph)).test
    (x_raw,) = run.transform.inverse(test.x)
    y = test.y
    eager = run.predictor().eval()
    program = torch.export.load(str(pt2_res.path)).module()
    threads = args.threads
    torch.set_num_threads(threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(str(onnx_res.path), opts, providers=["CPUExecutionProvider"])
    runtimes = {
        "torch eager": lambda xb: eager(xb),
        "pt2 (torch.export)": lambda xb: program(xb),
        "onnxruntime": lambda xb: torch.from_numpy(sess.run(None, {"input": xb.numpy()})[0]),
    }

    evaluated = lf.evaluate(run_dir, plot=False).metrics["accuracy"]
    print(f"# digits CNN: test accuracy ({len(y)} test images, raw inputs, checkpoint {run.checkpoint}, "
          f"epoch {run.epoch})\n")
    print("| runtime | test accuracy | equals `layerforge evaluate` |")
    print("|---|---:|---|")
    print(f"| `layerforge evaluate` | {evaluated:.4f} | — |")
    with torch.inference_mode():
        for name, fn in runtimes.items():
            acc = float((fn(x_raw).argmax(-1) == y).double().mean())
            print(f"| {name} | {acc:.4f} | {'yes' if acc == evaluated else 'NO'} |")
    print(f"\nexport check: onnx max |onnx − torch| = {onnx_res.check.max_abs_diff:.2g}, "
          f"pt2 {pt2_res.check.max_abs_diff:.2g} (on {onnx_res.check.samples} validation images)\n")

    sizes = [1, 32, len(x_raw)]
    times: dict[tuple[str, int], list[float]] = {(n, b): [] for n in runtimes for b in sizes}
    with torch.inference_mode():
        for b in sizes:
            xb = x_raw[:b].contiguous()
            for fn in runtimes.values():  # warm-up
                for _ in range(3):
                    fn(xb)
            for _ in range(rounds if b < 100 else max(3, rounds // 4)):
                for name, fn in runtimes.items():
                    t0 = time.perf_counter()
                    fn(xb)
                    times[(name, b)].append(time.perf_counter() - t0)
    print(f"# latency per batch (median of interleaved rounds; ratio = eager ÷ runtime)\n")
    print("| batch | " + " | ".join(runtimes) + " |")
    print("|---:|" + "---:|" * len(runtimes))
    for b in sizes:
        base = statistics.median(times[("torch eager", b)])
        cells = []
        for name in runtimes:
            med = statistics.median(times[(name, b)])
            cells.append(f"{med * 1e3:.3f} ms ({base / med:.2f}×)")
        print(f"| {b} | " + " | ".join(cells) + " |")
    print(f"\nconditions: torch {torch.__version__}, onnxruntime {ort.__version__}, {threads} threads each, "
          f"{platform.processor() or platform.machine()}, rounds {rounds}")


if __name__ == "__main__":
    main()
