"""What the recurrent options cost: torch's fused kernel vs the step loop (an option the kernel lacks),
and full-length vs packed (masked) batches, forward + backward, interleaved rounds, medians.

    OMP_NUM_THREADS=1 python benchmarks/recurrent_paths.py            # the docs/sequences.md table
    python benchmarks/recurrent_paths.py --smoke                      # a few steps, no timing claims

Prints the markdown table that goes into docs/sequences.md ("The cost of the step loop").
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from layerforge.layers import get_layer_type

VARIANTS = [  # (label, type, extra options); the first of each type is its fused baseline
    ("LSTM fused", "lstm", {}),
    ("LSTM recurrent_activation: hard_sigmoid (loop)", "lstm", {"recurrent_activation": "hard_sigmoid"}),
    ("LSTM recurrent_dropout: 0.2 (loop)", "lstm", {"recurrent_dropout": 0.2}),
    ("GRU fused", "gru", {}),
    ("GRU reset_after: false (loop)", "gru", {"reset_after": False}),
]


def step_time(module: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor | None) -> float:
    t0 = time.perf_counter()
    out = module(x, masks=[mask]) if mask is not None else module(x)
    out.sum().backward()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, two rounds (checks the script runs)")
    args = ap.parse_args()
    b, t, f, h, rounds = (4, 6, 3, 4, 2) if args.smoke else (32, 50, 32, 64, 15)
    torch.manual_seed(0)
    x = torch.randn(b, t, f)
    lengths = torch.randint(5, t + 1, (b,))
    mask = torch.arange(t)[None, :] < lengths[:, None]
    cases = []
    for label, type_, kw in VARIANTS:
        m = get_layer_type(type_).model_validate({"type": type_, "units": h, **kw}).build([(t, f)]).train()
        cases += [(label, "full", m, None), (label, "masked", m, mask)]
    times: dict[tuple[str, str], list[float]] = {(c[0], c[1]): [] for c in cases}
    for _ in range(rounds):  # interleaved: every variant once per round
        for label, kind, m, mk in cases:
            times[(label, kind)].append(step_time(m, x, mk))
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(f"B={b}, T={t}, F={f}, H={h}; masked lengths {int(lengths.min())}–{t}; forward + backward, median of "
          f"{rounds} interleaved rounds; torch {torch.__version__}, {torch.get_num_threads()} thread(s)\n")
    print("| variant | full length ms | × fused | masked (packed) ms | × fused |")
    print("|---|---|---|---|---|")
    base = {}
    for label, type_, _ in VARIANTS:
        base.setdefault(type_, label)
        fb = base[type_]
        print(f"| {label} | {med[(label, 'full')]:.2f} | {med[(label, 'full')] / med[(fb, 'full')]:.2f}× | "
              f"{med[(label, 'masked')]:.2f} | {med[(label, 'masked')] / med[(fb, 'masked')]:.2f}× |")


if __name__ == "__main__":
    main()
