"""layerforge's analytic FLOPs beside PyTorch's FlopCounterMode (and fvcore / ptflops / thop when installed).

For every registered layer type at its documented example shape (one sample, eval mode), it prints:

- ``layerforge``: the layer's analytic count (docs/flops.md: a multiply-add = 2, plus biases, activations
  and every other elementwise op of the layer's formula);
- ``lf matmul/conv``: the matmul and convolution terms of that same formula (the "2·…" terms of the
  layer's **FLOPs** section, re-derived here per type), i.e. layerforge's count with the elementwise
  ops left out;
- ``torch, as built``: ``torch.utils.flop_counter.FlopCounterMode`` on the module as layerforge builds
  it. It counts only matmul/conv/SDPA kernels it knows (2 per multiply-add), so recurrent layers and, on
  CPU, fused SDPA kernels count 0;
- ``torch, all visible``: FlopCounterMode again with every matmul made visible to it: the math SDPA
  backend forced, and the recurrent layers replaced by an unrolled reference (per-step ``F.linear`` with
  the module's own weights, checked to give the module's output);
- the ratio ``lf matmul/conv ÷ torch, all visible`` (1.00 = layerforge's matmul/conv terms agree with
  torch's counter, like for like) and ``layerforge ÷ torch, all visible`` (how much the elementwise ops
  add by layerforge's conventions);
- fvcore, ptflops and thop, when importable, as they report them: multiply-accumulates (MACs), so
  2 × their number is comparable with the matmul/conv columns; for elementwise work each has its own rules.

    python benchmarks/flop_counts.py            # the table
    python benchmarks/flop_counts.py --smoke    # the same, without the optional third-party counters
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import io
import logging
import warnings
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

import yaml

OPTIONAL = ("fvcore", "ptflops", "thop")


# --- layerforge's matmul/conv terms, per type (from each layer's **FLOPs** section) ------------------
def lf_matmul(layer: Any, shapes: list[tuple[int, ...]], out: tuple[int, ...], steps: int = 1) -> int:
    """The matmul/convolution FLOPs inside layerforge's count for this layer (biases, activations excluded);
    ``steps``: the time steps a spiking layer's input carries."""
    from math import prod

    t = layer.type
    if t == "rlif" and layer.feedback == "all_to_all":
        return steps * 2 * shapes[0][-1] * shapes[0][-1]
    if t == "dense":
        return prod(shapes[0][:-1]) * 2 * shapes[0][-1] * layer.units
    if t in ("conv1d", "conv2d"):
        kernel = layer._tuple(layer.kernel_size)
        return 2 * (shapes[0][0] // layer.groups) * prod(kernel) * prod(out)
    if t == "depthwise_conv2d":
        return 2 * prod(layer._tuple(layer.kernel_size)) * prod(out)
    if t == "separable_conv2d":
        mid = layer._depthwise().output_shape(shapes)
        return lf_matmul(layer._depthwise(), shapes, mid) + 2 * mid[0] * prod(out)
    if t in ("conv1d_transpose", "conv2d_transpose"):
        return 2 * prod(shapes[0]) * layer.filters * prod(layer._tuple(layer.kernel_size))
    if t == "dot":
        n = shapes[0][layer._resolved(shapes)[0]]
        return 2 * n * (prod(shapes[0]) // n) * (prod(shapes[1]) // n)
    if t == "time_distributed":
        return shapes[0][0] * lf_matmul(layer.layer, [shapes[0][1:]], out[1:])
    if t in ("simple_rnn", "lstm", "gru"):
        steps, f = shapes[0]
        dirs, g, h = (2 if layer.bidirectional else 1), layer.n_gates, layer.units
        return sum(dirs * steps * (2 * (f if i == 0 else h * dirs) * g * h + 2 * h * g * h) for i in range(layer.num_layers))
    if t == "self_attention":
        steps, d = shapes[0]
        u = layer.units or d
        return 3 * steps * 2 * d * u + steps * steps * (2 * u + 2 * u)
    if t == "attention":
        (tq, d), (tv, dv) = shapes[0], shapes[1]
        return tq * tv * (2 * d + 2 * dv)
    if t in ("multi_head_attention", "sparse_attention"):
        q = shapes[0]
        v = shapes[1] if len(shapes) > 1 else q
        k = shapes[2] if len(shapes) > 2 else v
        h, (dk, dv) = layer.num_heads, layer.head_dims(q[1])
        proj = 2 * (q[0] * q[1] * h * dk + k[0] * k[1] * h * dk + v[0] * v[1] * h * dv + q[0] * h * dv * out[-1])
        pairs = layer.computed_pairs(q[0]) if t == "sparse_attention" else q[0] * v[0]
        return proj + h * pairs * (2 * dk + 2 * dv)
    if t == "tt_dense":
        from layerforge.layers.tensor_train import tt_flops_per_position

        return prod(shapes[0][:-1]) * tt_flops_per_position(*layer.structure(shapes[0][-1]))
    if t == "quantum_circuit":  # complex matmuls: 8 real FLOPs per multiply-add here, 2 in FlopCounterMode
        from layerforge.layers.quantum import circuit_flops

        parts = circuit_flops(layer.qubits, layer.layers, shapes[0][-1], layer.encoding, layer.rotation, layer.measure)
        return prod(shapes[0][:-1]) * (parts["gates"] + parts["expectations"])
    if t == "transformer_block":  # its attention, then the two feed-forward matmuls
        steps, d = shapes[0]
        return lf_matmul(layer.attention, shapes, out) + 2 * 2 * steps * d * (layer.ffn_dim or 4 * d)
    return 0  # no matmul or convolution in the formula (pooling, norms, activations, merges, reshapes, ...)


# --- an unrolled reference for torch's recurrent modules, so FlopCounterMode sees every matmul ------
def unrolled(rnn: Any, x: Any) -> Any:
    """nn.RNN / nn.LSTM / nn.GRU (batch_first) step by step with F.linear; returns the output sequence."""
    import torch
    import torch.nn.functional as F

    kind = type(rnn).__name__
    seq = x  # (B, T, F)
    for layer in range(rnn.num_layers):
        outs = []
        for suffix in ([""] + (["_reverse"] if rnn.bidirectional else [])):
            w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}{suffix}"), getattr(rnn, f"weight_hh_l{layer}{suffix}")
            b_ih, b_hh = getattr(rnn, f"bias_ih_l{layer}{suffix}", None), getattr(rnn, f"bias_hh_l{layer}{suffix}", None)
            h = seq.new_zeros(seq.shape[0], rnn.hidden_size)  # (B, H)
            c = torch.zeros_like(h)
            steps = range(seq.shape[1] - 1, -1, -1) if suffix else range(seq.shape[1])
            hs = [None] * seq.shape[1]
            for t in steps:
                gi, gh = F.linear(seq[:, t], w_ih, b_ih), F.linear(h, w_hh, b_hh)  # (B, G·H) each
                if kind == "LSTM":
                    i, f, g, o = (gi + gh).chunk(4, -1)
                    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                    h = torch.sigmoid(o) * torch.tanh(c)
                elif kind == "GRU":
                    (ir, iz, inn), (hr, hz, hn) = gi.chunk(3, -1), gh.chunk(3, -1)
                    r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
                    n = torch.tanh(inn + r * hn)
                    h = (1 - z) * n + z * h
                else:
                    h = torch.tanh(gi + gh) if rnn.nonlinearity == "tanh" else torch.relu(gi + gh)
                hs[t] = h
            outs.append(torch.stack(hs, 1))  # (B, T, H)
        seq = torch.cat(outs, -1)  # (B, T, H·dirs)
    return seq


def reference_forward(module: Any, xs: list[Any]) -> Any:
    """The module's forward with recurrent layers unrolled (other modules run as they are)."""
    rnn = getattr(module, "rnn", None)
    if rnn is None or type(rnn).__name__ not in ("RNN", "LSTM", "GRU"):
        return module(*xs)
    import torch

    out = unrolled(rnn, xs[0])  # (B, T, H·dirs); the same selection as layerforge's RecurrentOutput
    if module.return_sequences:
        return out
    if not rnn.bidirectional:
        return out[:, -1]
    h = rnn.hidden_size
    return torch.cat([out[:, -1, :h], out[:, 0, h:]], dim=-1)


# --- the counters --------------------------------------------------------------------------------
def torch_count(fn: Any) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def wrapper(module: Any, n: int) -> Any:
    """A module taking the inputs as x0, x1, x2 (third-party counters want named or positional inputs)."""
    from torch import nn

    class Call(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, x0, x1=None, x2=None):
            return self.inner(*[x for x in (x0, x1, x2)[:n]])

    return Call().eval()


def third_party(tool: str, module: Any, xs: list[Any]) -> int:
    """The multiply-accumulates (MACs) the tool reports for one forward pass, as reported."""
    net = wrapper(copy.deepcopy(module), len(xs))
    sink = io.StringIO()
    with redirect_stdout(sink), redirect_stderr(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if tool == "fvcore":
            from fvcore.nn import FlopCountAnalysis

            a = FlopCountAnalysis(net, tuple(xs))
            a.unsupported_ops_warnings(False)
            a.uncalled_modules_warnings(False)
            macs = a.total()
        elif tool == "ptflops":
            from ptflops import get_model_complexity_info

            macs, _ = get_model_complexity_info(net, (1,), as_strings=False, print_per_layer_stat=False,
                                                input_constructor=lambda _: {f"x{i}": x for i, x in enumerate(xs)})
        else:
            from thop import profile

            macs, _ = profile(net, inputs=tuple(xs), verbose=False)
    return int(round(macs or 0))


def rows(tools: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from layerforge.layers.registry import registry

    out, errors = [], []
    for name, cls in registry().items():
        (item,) = yaml.safe_load(cls.example)
        layer = cls.model_validate(item)
        shapes = [tuple(s) for s in cls.example_inputs]
        out_shape = layer.output_shape(shapes)
        steps = cls.example_steps  # one sample over T time steps folded into the batch (spiking layers)
        torch.manual_seed(0)
        module = (layer.build(shapes, steps=steps) if cls.time_aware else layer.build(shapes)).eval()
        xs = [torch.randint(*layer.id_range(i), (steps, *s)) if layer.id_range(i) else torch.randn(steps, *s)
              for i, s in enumerate(shapes)]
        with torch.no_grad():
            built = torch_count(lambda: module(*xs))
            with sdpa_kernel(SDPBackend.MATH):
                visible = torch_count(lambda: reference_forward(module, xs))
                torch.manual_seed(1)  # the same draws for both (rate coding is random)
                ref = reference_forward(module, xs)
                torch.manual_seed(1)
                real = module(*xs)
        if not torch.allclose(ref, real, atol=1e-5, rtol=1e-4):
            raise AssertionError(f"{name}: the unrolled reference does not reproduce the module's output")
        lf = layer.flops(shapes, out_shape, steps=steps) if cls.time_aware else layer.flops(shapes, out_shape)
        row = {"type": name, "input": " + ".join(str(s) for s in shapes) + (f" × T={steps}" if steps > 1 else ""),
               "lf": lf, "lf_mm": lf_matmul(layer, shapes, out_shape, steps), "built": built, "visible": visible}
        for tool in tools:
            try:
                row[tool] = third_party(tool, module, xs)
            except Exception as e:  # a third-party counter failing on a layer is a result to report, not a bug here
                row[tool] = None
                errors.append(f"{tool} on {name}: {type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}")
        out.append(row)
    return out, errors


def fmt(v: int | None) -> str:
    return "error" if v is None else f"{v:,}"


def ratio(a: int, b: int | None) -> str:
    if not b:
        return "–" if not a else "∞ (other: 0)"
    return f"{a / b:.2f}"


def table(data: list[dict[str, Any]], tools: list[str]) -> str:
    head = ["layer", "input (per sample)", "layerforge", "lf matmul/conv", "torch, as built", "torch, all visible",
            "lf matmul/conv ÷ visible", "layerforge ÷ visible", *[f"{t} (MACs)" for t in tools]]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for r in data:
        cells = [f"`{r['type']}`", r["input"], fmt(r["lf"]), fmt(r["lf_mm"]), fmt(r["built"]), fmt(r["visible"]),
                 ratio(r["lf_mm"], r["visible"]), ratio(r["lf"], r["visible"]), *[fmt(r[t]) for t in tools]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="skip the optional third-party counters (quick check)")
    args = p.parse_args(argv)
    import torch

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    missing = [t for t in OPTIONAL if importlib.util.find_spec(t) is None]
    tools = [] if args.smoke else [t for t in OPTIONAL if t not in missing]
    data, errors = rows(tools)
    print(table(data, tools))
    print()
    missed = [f"{r['type']} ({'all' if r['built'] == 0 else format(r['visible'] - r['built'], ',')} of {r['visible']:,})"
              for r in data if r["built"] < r["visible"]]
    print("FlopCounterMode, as built, misses matmul FLOPs in: " + (", ".join(missed) or "none"))
    print("per sample (batch 1), eval mode, CPU; torch " + torch.__version__
          + "".join(f", {t} {_version(t)}" for t in tools))
    for t in missing:
        print(f"{t}: not installed (optional: pip install {t})")
    for e in errors:
        print("error: " + e)
    return 0


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    raise SystemExit(main())
