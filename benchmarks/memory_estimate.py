"""Analytic (traced) against measured memory, for every shipped config and a one-layer model of every
registered layer type: the training step's peak and the inference pass's peak, at batch 1, 32 and 256.

    python benchmarks/memory_estimate.py [--batch-sizes 1,32,256] [--types] [--configs]

Prints the markdown table of docs/profile.md (measured: torch.profiler's allocator events on the CPU;
analytic: the step traced on fake tensors, layerforge.analysis.estimate).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def config_graphs(root: Path = ROOT) -> list[tuple[str, object]]:
    """(name, graph) of every config under configs/ (recursively)."""
    import warnings

    from layerforge.build import load

    out = []
    for path in sorted((root / "configs").rglob("*.yaml")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, graph = load(path)
        out.append((str(path.relative_to(root / "configs")).removesuffix(".yaml"), graph))
    return out


def type_graphs() -> list[tuple[str, object]]:
    """(type name, graph) of a one-layer model of every registered layer type, from its example."""
    from layerforge.graph import example_graph
    from layerforge.layers.registry import registry

    return [(f"type:{name}", example_graph(cls)) for name, cls in registry().items()]


def rows(graphs: list[tuple[str, object]], batch_sizes: list[int]) -> list[tuple[str, int, str, int, int]]:
    """(name, batch, mode, measured peak, analytic peak) for each graph, batch size and mode."""
    from layerforge.analysis.profiler import measure_memory

    out = []
    for name, graph in graphs:
        for bs in batch_sizes:
            for train in (True, False):
                r = measure_memory(graph, bs, train=train)
                out.append((name, bs, r.mode, r.measured.peak, r.analytic.peak))
    return out


def table(data: list[tuple[str, int, str, int, int]]) -> str:
    from layerforge.text import human_bytes

    lines = ["| model | batch | mode | measured | analytic | analytic ÷ measured |", "|---|---:|---|---:|---:|---:|"]
    for name, bs, mode, m, a in data:
        lines.append(f"| {name} | {bs} | {mode} | {human_bytes(m)} | {human_bytes(a)} | {a / m:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-sizes", default="1,32,256")
    ap.add_argument("--configs", action="store_true", help="only the shipped configs")
    ap.add_argument("--types", action="store_true", help="only the one-layer models of every type")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    graphs = ([] if a.types else config_graphs()) + ([] if a.configs else type_graphs())
    print(table(rows(graphs, [int(b) for b in a.batch_sizes.split(",")])))


if __name__ == "__main__":
    main()
