"""Long-sequence attention: dense SDPA vs the masked reference vs each blocked sparse pattern.

Batch 1, D = 64 split into 4 heads (d_head = 16), window 256, causal, fp32, T = 512 … 16,384; forward
and forward+backward time (medians of interleaved rounds, so ratios hold on a busy machine) and peak
memory (allocations during the step, measured as `layerforge profile` does: analysis.memory.track). The
masked reference is skipped where its T×T tensors would need more than --masked-gib GiB. Prints the
markdown table of docs/attention.md and writes the log-log plot.

    nice python benchmarks/long_attention.py                        # the full run (~10 minutes on 2 cores)
    nice python benchmarks/long_attention.py --threads 1            # on a machine shared with other jobs
    python benchmarks/long_attention.py --smoke                     # a quick check (no claims)
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
HEADS, HEAD_DIM, WINDOW = 4, 16, 256
LENGTHS = [512, 1024, 2048, 4096, 8192, 16384]


def methods() -> dict[str, Callable[..., Any]]:
    """Name → attention(q, k, v): (1, H, T, d) each → (1, H, T, d)."""
    import torch.nn.functional as F

    from layerforge.layers.sparse_kernels import blocked_attention, masked_attention
    from layerforge.layers.sparse_patterns import Pattern

    sliding = Pattern("sliding", WINDOW, True)
    patterns = {
        "sliding": sliding,
        "dilated (r=2)": Pattern("dilated", WINDOW // 2, True, dilation=2),
        "strided (s=256)": Pattern("strided", WINDOW, True, stride=256),
        "block_local+16 global": Pattern("block_local", WINDOW, True, global_tokens=16),
    }
    out: dict[str, Callable[..., Any]] = {
        "dense SDPA (causal)": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        "masked (sliding)": lambda q, k, v: masked_attention(q, k, v, sliding),  # builds the T×T mask, as a layer's
    }                                                                            # first call does (then keeps it)
    for name, p in patterns.items():
        out[name] = lambda q, k, v, p=p: blocked_attention(q, k, v, p)
    return out


def masked_bytes(t: int) -> int:
    """What the masked reference holds at its peak (training): the bool mask, the float scores, the
    weights and their gradient, each T×T per head."""
    return t * t * (1 + 3 * 4 * HEADS)


def step(fn: Callable[..., Any], qkv: tuple, backward: bool) -> None:
    out = fn(*qkv)
    if backward:
        out.backward(torch_ones(out))


def torch_ones(x: Any) -> Any:
    import torch

    return torch.ones_like(x)


def timed(fn: Callable[..., Any], qkv: tuple, backward: bool) -> float:
    for x in qkv:
        x.grad = None
    t0 = time.perf_counter()
    step(fn, qkv, backward)
    return time.perf_counter() - t0


def peak_bytes(fn: Callable[..., Any], qkv: tuple, backward: bool) -> int:
    from layerforge.analysis.memory import track

    for x in qkv:
        x.grad = None

    def run(phase: Callable[[str], Any]) -> None:
        with phase("step"):
            step(fn, qkv, backward)

    return track(run, "cpu").peak


def measure(lengths: list[int], rounds: int, masked_gib: float) -> dict[tuple[str, int], dict[str, float | None]]:
    import torch

    torch.manual_seed(0)
    fns = methods()
    results: dict[tuple[str, int], dict[str, float | None]] = {}
    for t in lengths:
        qkv = tuple(torch.randn(1, HEADS, t, HEAD_DIM, requires_grad=True) for _ in range(3))
        run = {m: f for m, f in fns.items() if not (m.startswith("masked") and masked_bytes(t) > masked_gib * 2**30)}
        for m, f in run.items():  # warm-up (and the first call's one-off work) outside the rounds
            timed(f, qkv, True)
        times: dict[tuple[str, bool], list[float]] = {(m, b): [] for m in run for b in (False, True)}
        for _ in range(rounds):
            for m, f in run.items():  # interleaved: every method sees the same machine conditions
                for b in (False, True):
                    times[(m, b)].append(timed(f, qkv, b))
        for m in fns:
            if m not in run:
                results[(m, t)] = {"fwd": None, "train": None, "fwd_mem": None, "train_mem": None}
                continue
            results[(m, t)] = {"fwd": statistics.median(times[(m, False)]), "train": statistics.median(times[(m, True)]),
                               "fwd_mem": peak_bytes(run[m], qkv, False), "train_mem": peak_bytes(run[m], qkv, True)}
        print(f"T={t} done", flush=True)
    return results


def _ms(x: float | None) -> str:
    return "—" if x is None else f"{x * 1e3:,.1f}"


def _mib(x: float | None) -> str:
    return "—" if x is None else f"{x / 2**20:,.1f}"


def table(results: dict, lengths: list[int], masked_gib: float) -> str:
    names = list(dict.fromkeys(m for m, _ in results))
    dense = "dense SDPA (causal)"
    lines = ["| T | method | fwd ms | fwd+bwd ms | ×dense fwd+bwd | peak fwd MiB | peak fwd+bwd MiB |",
             "|---|---|---|---|---|---|---|"]
    for t in lengths:
        base = results[(dense, t)]["train"]
        for m in names:
            r = results[(m, t)]
            if r["train"] is None:
                lines.append(f"| {t:,} | {m} | not run: its T×T tensors need ~{masked_bytes(t) / 2**30:.1f} GiB "
                             f"(> {masked_gib:g}) | | | | |")
                continue
            speed = f"{base / r['train']:.2f}×" if m != dense else "1.00×"
            lines.append(f"| {t:,} | {m} | {_ms(r['fwd'])} | {_ms(r['train'])} | {speed} | {_mib(r['fwd_mem'])} "
                         f"| {_mib(r['train_mem'])} |")
    return "\n".join(lines)


def verdict(results: dict, lengths: list[int]) -> list[str]:
    """The issue's targets, checked on the figures just measured."""
    dense, sliding = "dense SDPA (causal)", "sliding"
    out = []
    if 16384 in lengths:
        d, s = results[(dense, 16384)], results[(sliding, 16384)]
        out.append(f"T=16,384 training step: sliding {d['train'] / s['train']:.1f}× faster than dense SDPA "
                   f"(target ≥ 8×); peak {_mib(s['train_mem'])} MiB vs dense {_mib(d['train_mem'])} MiB "
                   f"(target: no higher)")
    if 4096 in lengths and 16384 in lengths:
        g = results[(sliding, 16384)]["train"] / results[(sliding, 4096)]["train"]
        out.append(f"sliding training time from T=4,096 to 16,384 grows {g:.2f}× (target ≤ 4.6×, linear = 4×)")
    return out


def plot(results: dict, lengths: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(m for m, _ in results))
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for m in names:
        ts = [t for t in lengths if results[(m, t)]["train"] is not None]
        line, = ax_t.plot(ts, [results[(m, t)]["train"] for t in ts], marker="o", label=m)
        ax_t.plot(ts, [results[(m, t)]["fwd"] for t in ts], ls="--", color=line.get_color(), alpha=0.6)
        ax_m.plot(ts, [results[(m, t)]["train_mem"] / 2**20 for t in ts], marker="o", color=line.get_color())
    for ax, title, unit in ((ax_t, "time: forward+backward (solid), forward (dashed)", "seconds"),
                            (ax_m, "peak memory, forward+backward", "MiB")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length T")
        ax.set_ylabel(unit)
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.legend(fontsize=8)
    fig.suptitle(f"attention, batch 1, {HEADS} heads × {HEAD_DIM}, window {WINDOW}, causal, fp32, CPU", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="two short lengths, one round, no plot (a quick check)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (medians)")
    p.add_argument("--masked-gib", type=float, default=2.0, help="skip the masked reference above this many GiB")
    p.add_argument("--plot", type=Path, default=ROOT / "docs" / "attention_bench.png")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    lengths = [128] if args.smoke else LENGTHS
    results = measure(lengths, 1 if args.smoke else args.rounds, args.masked_gib)
    print()
    print(table(results, lengths, args.masked_gib))
    print()
    for line in verdict(results, lengths):
        print(f"- {line}")
    print(f"\nconditions: torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}, "
          f"{args.rounds if not args.smoke else 1} interleaved rounds (medians)")
    if not args.smoke:
        plot(results, lengths, args.plot)
        print(f"plot: {args.plot.relative_to(ROOT) if args.plot.is_relative_to(ROOT) else args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
