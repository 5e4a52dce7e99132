"""Spikes and energy of a spiking model (layers/spiking.py), measured on data.

Per spiking layer: the mean firing rate (spikes per neuron per time step) and the spikes per sample;
per weight layer (every ``nn.Linear`` / ``nn.ConvNd`` inside a layer): the multiply-accumulates (MACs) of
the equivalent non-spiking network (the same weights, one pass per sample, no time steps), and what the
spiking network does instead. A weight layer whose input is spikes (only 0s and 1s, checked on the data)
only adds the weights that a spike reaches: its synaptic operations are SOPs = Σ spikes × fan-out, the
fan-out of an input element being the number of weights it multiplies (``out_features`` for a dense
layer; for a convolution, the kernel taps that see that position: fewer at a padded border). A weight
layer with real-valued input (after ``direct`` coding) does all its MACs at every step.

**Energy convention** (an estimate of the arithmetic only): 45 nm CMOS, 32-bit float, Horowitz 2014
("Computing's energy problem", ISSCC): a MAC costs 4.6 pJ (3.7 pJ multiply + 0.9 pJ add), an accumulate
0.9 pJ. ANN = 4.6 pJ × MACs; SNN = 0.9 pJ × SOPs + 4.6 pJ × (MACs on real-valued inputs, all steps)
+ 4.6 pJ × neuron updates (one MAC per LIF neuron per step: β·U + I). Memory traffic is ignored, and it
can dominate: reading a 32-bit word from a small SRAM cache costs ~5 pJ and from DRAM ~640 pJ (Horowitz
2014), and SNNs also read and write their membrane state at every step (Dampfhoffer et al. 2023, "Are
SNNs really more energy-efficient than ANNs?", IEEE TETCI). Only weight layers are counted (attention's
score products, activations, pooling and normalisation are not).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from ..layers.common import numel
from ..layers.spiking import LIF, SpikingLayer

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..graph import Graph, Node
    from ..spec.schema import Spec

E_MAC_PJ = 4.6  # 32-bit float multiply-accumulate, 45 nm (Horowitz 2014)
E_AC_PJ = 0.9  # 32-bit float add
CONVENTION = ("estimate of the arithmetic only, 45 nm 32-bit float (Horowitz 2014): 4.6 pJ per MAC, 0.9 pJ per "
              "accumulate; memory traffic (weights, membrane state) is ignored and can dominate")


@dataclass
class WeightRow:
    """One weight module (``layer`` + its path ``module`` inside the layer's module)."""

    layer: str
    module: str
    source: str | None  # the spiking layer whose spikes it reads (None: a real-valued input)
    steps: int  # time steps it runs for
    ann_macs: int  # per sample, in the equivalent non-spiking network (one step)
    spike_input: bool | None = None  # measured: every input value was 0 or 1 (None: not measured)
    input_density: float | None = None  # measured: the fraction of input values that are not 0
    sops: float | None = None  # per sample, all steps: Σ spikes × fan-out (spike input)
    snn_macs: float | None = None  # per sample, all steps: MACs on a real-valued input
    ann_energy_pj: float = 0.0
    snn_energy_pj: float | None = None


@dataclass
class SpikingRow:
    layer: str
    type: str
    steps: int
    neurons: int  # per sample and step
    feeds: list[str]  # the weight layers its spikes reach
    firing_rate: float | None = None  # spikes per neuron per step (measured)
    spikes: float | None = None  # per sample, all steps
    sops: float | None = None  # per sample: the synaptic operations its spikes cause in `feeds`
    ann_macs: int = 0  # the MACs of `feeds` in the equivalent non-spiking network


@dataclass
class SpikeReport:
    name: str
    weights: str  # where the weights came from
    measured: bool
    samples: int  # samples measured (0 without data)
    split: str | None
    layers: list[SpikingRow]
    weight_layers: list[WeightRow]
    ann_macs: int  # per sample
    neuron_updates: int  # per sample: LIF neurons × steps
    sops: float | None = None  # per sample, all steps
    snn_macs: float | None = None  # per sample, MACs on real-valued inputs, all steps
    ann_energy_uj: float = 0.0
    snn_energy_uj: float | None = None
    convention: str = CONVENTION
    notes: list[str] = field(default_factory=list)

    @property
    def energy_ratio(self) -> float | None:
        """ANN energy / SNN energy (> 1: the spiking network is estimated cheaper)."""
        return self.ann_energy_uj / self.snn_energy_uj if self.snn_energy_uj else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["energy_ratio"] = self.energy_ratio
        d["constants_pj"] = {"mac": E_MAC_PJ, "accumulate": E_AC_PJ}
        return d


def is_spiking(graph: "Graph") -> bool:
    return any(isinstance(n.layer, SpikingLayer) for n in graph.nodes)


def _weight_modules(module: "nn.Module") -> list[tuple[str, "nn.Module"]]:
    from torch import nn

    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    return [(path, m) for path, m in module.named_modules() if isinstance(m, kinds)]


def _source(graph: "Graph", node: "Node", weighted: set[str]) -> str | None:
    """The spiking layer whose spikes a weight module reads: the node itself for a recurrent feedback,
    else the first spike-emitting layer upstream through single-input layers without weights."""
    if isinstance(node.layer, SpikingLayer):
        return node.name if node.layer.emits_spikes() else None
    names = {n.name for n in graph.nodes}
    cur = node.inputs[0] if len(node.inputs) == 1 else None
    while cur in names:
        up = graph.node(cur)
        if isinstance(up.layer, SpikingLayer) and up.layer.emits_spikes():
            return up.name
        if up.name in weighted or len(up.inputs) != 1:
            return None
        cur = up.inputs[0]
    return None


class _Acc:
    """Running sums of one hooked module over the measured batches."""

    def __init__(self) -> None:
        self.frames = 0  # rows seen (samples × steps)
        self.macs = 0
        self.sops = 0.0
        self.binary = True
        self.nonzero = 0  # input values ≠ 0, and input values seen
        self.inputs = 0
        self.spikes = 0.0
        self.elements = 0
        self.fanout: dict[tuple[int, ...], "torch.Tensor"] = {}


def _fanout(m: "nn.Module", x: "torch.Tensor", acc: _Acc) -> "torch.Tensor | int":
    """Weights each input element multiplies: out_features (linear), or the conv's taps per position."""
    import torch
    from torch import nn

    if isinstance(m, nn.Linear):
        return m.out_features
    key = tuple(x.shape[1:])
    if key not in acc.fanout:
        with torch.enable_grad():
            ones = torch.ones((1, *key), device=x.device, dtype=torch.float32, requires_grad=True)
            y = m._conv_forward(ones, torch.ones_like(m.weight, dtype=torch.float32), None)
            (acc.fanout[key],) = torch.autograd.grad(y.sum(), ones)
    return acc.fanout[key][0]


def _weight_hook(acc: _Acc, on_data: bool):
    import torch

    def hook(m: "nn.Module", inputs: tuple, output: "torch.Tensor") -> None:
        x = inputs[0]
        acc.frames += x.shape[0]
        acc.macs += output.numel() * m.weight[0].numel()  # outputs × fan-in (per group)
        if on_data:
            acc.nonzero += int(torch.count_nonzero(x))
            acc.inputs += x.numel()
        if on_data and acc.binary:
            acc.binary = bool(((x == 0) | (x == 1)).all())
            if acc.binary:
                acc.sops += float((x.float() * _fanout(m, x, acc)).sum())
    return hook


def _spike_hook(acc: _Acc):
    def hook(m: "nn.Module", inputs: tuple, output: "torch.Tensor") -> None:
        acc.spikes += float(output.detach().float().sum())
        acc.elements += output.numel()
    return hook


def measure(model: "nn.Module", graph: "Graph", batches: Iterable[Any], *, seed: int = 0, name: str = "model",
            weights: str = "", split: str | None = None) -> SpikeReport:
    """Run ``model`` (built from ``graph``) over ``batches`` (input tensors, or dicts for several inputs)
    in eval mode and report spikes, operations and energy. Rate coding draws from torch's generator,
    seeded with ``seed`` inside a forked RNG state (:func:`layerforge.runtime.seeded`: the caller's random
    state is left as it was).
    An empty ``batches`` gives the data-free part (MACs, neurons, steps) from one random sample."""
    import torch

    from ..runtime import seeded
    from .step import make_inputs

    accs: dict[tuple[str, str], _Acc] = {}
    spikes: dict[str, _Acc] = {}
    handles = []
    weighted: set[str] = set()
    batches = list(batches)
    for n in graph.nodes:
        mod = model.layers[n.name]
        for path, m in _weight_modules(mod):
            weighted.add(n.name)
            accs[(n.name, path)] = acc = _Acc()
            handles.append(m.register_forward_hook(_weight_hook(acc, bool(batches))))
        if isinstance(n.layer, SpikingLayer) and n.layer.emits_spikes():
            spikes[n.name] = acc = _Acc()
            handles.append(mod.register_forward_hook(_spike_hook(acc)))
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was = model.training
    samples = 0
    model.eval()
    try:
        with seeded(seed, device), torch.no_grad():
            if not batches:
                model(*make_inputs(graph, 1, str(device)))
            for xb in batches:
                if isinstance(xb, dict):
                    model(**{k: v.to(device) for k, v in xb.items()})
                    samples += len(next(iter(xb.values())))
                else:
                    model(xb.to(device))
                    samples += len(xb)
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    return _report(graph, accs, spikes, weighted, samples, name, weights, split)


def _report(graph: "Graph", accs: dict[tuple[str, str], _Acc], spikes: dict[str, _Acc], weighted: set[str],
            samples: int, name: str, weights: str, split: str | None) -> SpikeReport:
    measured = samples > 0
    rows: list[WeightRow] = []
    for (layer, path), acc in accs.items():
        node = graph.node(layer)
        per_frame = acc.macs // max(acc.frames, 1)
        r = WeightRow(layer, path, _source(graph, node, weighted), node.steps, per_frame,
                      ann_energy_pj=per_frame * E_MAC_PJ)
        if measured:
            r.spike_input = acc.binary
            r.input_density = acc.nonzero / max(acc.inputs, 1)
            if acc.binary:
                r.sops = acc.sops / samples
                r.snn_energy_pj = r.sops * E_AC_PJ
            else:
                r.snn_macs = acc.macs / samples
                r.snn_energy_pj = r.snn_macs * E_MAC_PJ
        rows.append(r)
    layers: list[SpikingRow] = []
    for n in graph.nodes:
        if not isinstance(n.layer, SpikingLayer) or not n.layer.emits_spikes():
            continue
        mine = [r for r in rows if r.source == n.name]
        row = SpikingRow(n.name, n.layer.type, n.out_steps, numel(n.out_shape),
                         [r.layer + (f".{r.module}" if r.module else "") for r in mine],
                         ann_macs=sum(r.ann_macs for r in mine))
        acc = spikes[n.name]
        if measured and acc.elements:
            row.firing_rate = acc.spikes / acc.elements
            row.spikes = acc.spikes / samples
            row.sops = sum(r.sops or 0.0 for r in mine if r.spike_input)
        layers.append(row)
    neuron_updates = sum(numel(n.out_shape) * n.steps for n in graph.nodes if isinstance(n.layer, LIF))
    ann = sum(r.ann_macs for r in rows)
    rep = SpikeReport(name, weights, measured, samples, split, layers, rows, ann, neuron_updates,
                      ann_energy_uj=ann * E_MAC_PJ * 1e-6)
    if measured:
        rep.sops = sum(r.sops or 0.0 for r in rows)
        rep.snn_macs = sum(r.snn_macs or 0.0 for r in rows)
        rep.snn_energy_uj = (rep.sops * E_AC_PJ + (rep.snn_macs + neuron_updates) * E_MAC_PJ) * 1e-6
    else:
        rep.notes.append("firing rates, SOPs and the spiking network's energy need data: measure on the spec's "
                         "data (layerforge inspect CONFIG --data) or a trained run (layerforge inspect RUN_DIR --data)")
    return rep


# ---------------------------------------------------------------------------------------------
# From a spec or a run directory, on its data
# ---------------------------------------------------------------------------------------------
def spike_report(source: Any, *, data: Any = None, samples: int = 256, split: str | None = None,
                 measure_data: bool = True, checkpoint: str = "best", overrides: list[str] | None = None,
                 plugins: list[str] | None = None, device: str = "cpu", trust_plugins: bool = False) -> SpikeReport:
    """Spikes, operations and energy of a spiking model, measured on the first ``samples`` samples of a split.

    ``source``: a spec (YAML path, dict, Spec or (Spec, Graph)) — its weights as initialised from the
    spec's seed — or a run directory (its spec and trained ``checkpoint`` weights; ``overrides`` may change
    what leaves the weights as trained, such as the time steps). ``data``: None for the spec's ``data:``
    section (the ``split`` given, else val, else test, else train), a DataBundle, a Split or an input
    tensor. ``measure_data=False`` gives only the data-free part. ``trust_plugins``: as for
    :func:`layerforge.load`."""
    spec, graph, model, weights, trained = _open(source, checkpoint, overrides, plugins, trust_plugins)
    batches: list[Any] = []
    used: str | None = None
    notes: list[str] = []
    if measure_data:
        batches, used, notes = _batches(spec, graph, data, samples, split)
    model.to(device)
    rep = measure(model, graph, batches, seed=spec.seed, name=spec.name, weights=weights, split=used)
    rep.notes = notes + rep.notes
    if rep.measured and not trained:
        rep.notes.append("untrained weights (initialised from the spec's seed); a trained run's firing rates: "
                         "layerforge inspect RUN_DIR --data")
    return rep


def _open(source: Any, checkpoint: str, overrides: list[str] | None, plugins: list[str] | None,
          trust_plugins: bool) -> tuple["Spec", "Graph", "nn.Module", str, bool]:
    """(spec, graph, model, where the weights came from, trained?), through the front door: a run
    directory's spec and checkpoint (:func:`layerforge.engine.evaluate.load_trained`), else the spec's
    seeded build (:func:`layerforge.build.load` and :func:`~layerforge.build.module`)."""
    import os
    from pathlib import Path

    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        from ..engine.evaluate import load_trained

        run, spec, graph, model, which, epoch = load_trained(source, checkpoint, plugins, overrides, trust_plugins)
        return spec, graph, model, f"{run.path} ({which} checkpoint, epoch {epoch})", True
    from ..build import load, module

    spec, graph = load(source, overrides, plugins, trust_plugins=trust_plugins)
    return spec, graph, module(spec, graph), f"initialised from seed {spec.seed}", False


def _batches(spec: "Spec", graph: "Graph", data: Any, samples: int, split: str | None
             ) -> tuple[list[Any], str | None, list[str]]:
    """The first ``samples`` inputs of the chosen split, in batches of at most 128; (batches, split, notes)."""
    from ..data.bundle import DataBundle, Split
    from ..errors import UsageError

    if split not in (None, "val", "test", "train"):
        raise UsageError(f"unknown split '{split}'", hint="use val, test or train")
    if data is None:
        if spec.data is None:
            return [], None, ["the spec has no data: section, so nothing was measured"]
        from ..build import data_facts
        from ..data import load_data

        data = load_data(spec, data_facts(graph))
    used = "given data"
    if isinstance(data, DataBundle):
        used = next((s for s in ([split] if split else ["val", "test", "train"])
                     if getattr(data, s) is not None and len(getattr(data, s))), None)
        if used is None:
            raise UsageError(f"the data has no {split} split", hint="measure on another split")
        data = getattr(data, used)
    x = data.x if isinstance(data, Split) else data
    n = min(samples, len(next(iter(x.values()))) if isinstance(x, dict) else len(x))
    size = 128
    if isinstance(x, dict):
        return [{k: v[i:min(i + size, n)] for k, v in x.items()} for i in range(0, n, size)], used, []
    return [x[i:min(i + size, n)] for i in range(0, n, size)], used, []
