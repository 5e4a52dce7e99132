"""The model graph: resolve each layer's inputs, order them, walk shapes, and build the nn.Module.

The shape walk uses each layer type's pure ``output_shape``, so a spec is checked before any weight
exists; ``build_module`` then makes an ordinary ``torch.nn.Module`` whose submodules are named after the
spec's layers (``model.layers["conv1"]``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Callable

from .errors import Issue, ShapeError
from .layers.common import numel
from .layers.registry import LayerSpec, Shape
from .text import suggest

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass
class Node:
    name: str
    layer: LayerSpec
    index: int  # position in model.layers
    inputs: list[str]
    in_shapes: list[Shape] = field(default_factory=list)
    out_shape: Shape = ()
    # Time steps T folded into the batch of the node's input and output (spiking layers; 1 = none).
    steps: int = 1
    out_steps: int = 1

    def build(self) -> "nn.Module":
        """The layer's module for its input shapes (and its input's time steps, for time-aware layers)."""
        if type(self.layer).time_aware:
            return self.layer.build(self.in_shapes, steps=self.steps)  # type: ignore[call-arg]
        return self.layer.build(self.in_shapes)

    def flops(self) -> int | None:
        """Forward FLOPs per sample, all T time steps included."""
        if type(self.layer).time_aware:
            return self.layer.flops(self.in_shapes, self.out_shape, steps=self.steps)  # type: ignore[call-arg]
        f = self.layer.flops(self.in_shapes, self.out_shape)
        return None if f is None else f * self.steps

    def backward_flops(self) -> int | None:
        if type(self.layer).time_aware:
            return self.layer.backward_flops(self.in_shapes, self.out_shape, steps=self.steps)  # type: ignore[call-arg]
        b = self.layer.backward_flops(self.in_shapes, self.out_shape)
        return None if b is None else b * self.steps

    @property
    def in_elements(self) -> int:
        """Input elements per sample (all inputs, all time steps)."""
        return sum(numel(s) for s in self.in_shapes) * self.steps

    @property
    def out_elements(self) -> int:
        """Output elements per sample (all time steps)."""
        return numel(self.out_shape) * self.out_steps


@dataclass
class Graph:
    """Inputs, nodes in execution order (with shapes), and output names."""

    inputs: dict[str, Shape]
    nodes: list[Node]
    outputs: list[str]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def shape_of(self, name: str) -> Shape:
        if name in self.inputs:
            return self.inputs[name]
        return self.node(name).out_shape

    @property
    def output_shapes(self) -> list[Shape]:
        return [self.shape_of(o) for o in self.outputs]

    def integer_inputs(self) -> dict[str, tuple[int, int]]:
        """Model inputs that hold integer ids, with their valid half-open range: the narrowest over the
        layers that read the input (each layer says so through ``LayerSpec.id_range``)."""
        out: dict[str, tuple[int, int]] = {}
        for n in self.nodes:
            for i, ref in enumerate(n.inputs):
                r = n.layer.id_range(i) if ref in self.inputs else None
                if r is not None:
                    lo, hi = out.get(ref, r)
                    out[ref] = (max(lo, r[0]), min(hi, r[1]))
        return out


Locate = Callable[[tuple, str, "str | None", "str | None"], Issue]


def plan(
    input_shapes: dict[str, Shape], layers: list[LayerSpec], outputs: list[str] | None, locate: Locate
) -> tuple[Graph | None, list[Issue]]:
    """Resolve references, order the layers topologically and propagate shapes; collect every issue."""
    issues: list[Issue] = []
    at = lambda i, *rest: ("model", "layers", i, *rest)  # noqa: E731

    # 1. Names: explicit names must be unique and not collide with inputs; unnamed get <type>_<n>.
    names: list[str] = []
    taken = set(input_shapes) | {l.name for l in layers if l.name}
    counters: dict[str, int] = {}
    seen: dict[str, int] = {}
    for i, layer in enumerate(layers):
        if layer.name:
            if layer.name in input_shapes:
                issues.append(locate(at(i, "name"), f"name '{layer.name}' is already a model input", "rename the layer", layer.label()))
            elif layer.name in seen:
                issues.append(locate(at(i, "name"), f"name '{layer.name}' is already used by model.layers[{seen[layer.name]}]",
                                     "layer names must be unique", layer.label()))
            seen.setdefault(layer.name, i)
            names.append(layer.name)
        else:
            while True:
                counters[layer.type] = counters.get(layer.type, 0) + 1
                auto = f"{layer.type}_{counters[layer.type]}"
                if auto not in taken:
                    break
            taken.add(auto)
            names.append(auto)

    # 2. Inputs of each layer.
    known = set(input_shapes) | set(names)
    first_input = next(iter(input_shapes))
    refs: list[list[str]] = []
    for i, layer in enumerate(layers):
        if layer.inputs is None:
            if i == 0 and len(input_shapes) > 1:
                issues.append(locate(at(i), f"the model has {len(input_shapes)} inputs ({', '.join(input_shapes)}); "
                                     "the first layer must say which it reads", "add inputs: [<input name>]", layer.label()))
            refs.append([first_input] if i == 0 else [names[i - 1]])
        else:
            for j, ref in enumerate(layer.inputs):
                if ref not in known:
                    hint = suggest(ref, sorted(known)) or f"known names: {', '.join(sorted(known))}"
                    issues.append(locate(at(i, "inputs", j), f"unknown input '{ref}'", hint, layer.label()))
                elif ref == names[i]:
                    issues.append(locate(at(i, "inputs", j), f"layer '{ref}' reads its own output", "a layer cannot be its own input", layer.label()))
            refs.append(list(layer.inputs))
        n = len(refs[-1])
        lo, hi = type(layer).min_inputs, type(layer).max_inputs
        if not lo <= n <= hi:
            want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi < 99 else f"at least {lo}"
            issues.append(locate(at(i, "inputs"), f"takes {want} input(s), got {n}",
                                 "list the inputs with inputs: [a, b]" if n < lo else "remove inputs", layer.label()))
    if issues:
        return None, issues

    # 3. Topological order (Kahn, stable: spec order among ready layers); leftovers form a cycle.
    index = {n: i for i, n in enumerate(names)}
    deps = {i: {index[r] for r in refs[i] if r in index} for i in range(len(layers))}
    done: list[int] = []
    ready = set(input_shapes)
    pending = list(range(len(layers)))
    while pending:
        nxt = next((i for i in pending if all(names[d] in ready for d in deps[i])), None)
        if nxt is None:
            cyc = ", ".join(f"'{names[i]}'" for i in pending)
            issues.append(locate(at(pending[0], "inputs"), f"the layers {cyc} form a cycle (each waits on another)",
                                 "a layer may only read model inputs or layers that do not depend on it", layers[pending[0]].label()))
            return None, issues
        pending.remove(nxt)
        done.append(nxt)
        ready.add(names[nxt])

    # 4. Shapes, and the time steps folded into the batch (spiking layers).
    shapes: dict[str, Shape] = dict(input_shapes)
    steps: dict[str, int] = dict.fromkeys(input_shapes, 1)
    nodes: list[Node] = []
    for i in done:
        layer = layers[i]
        node = Node(names[i], layer, i, refs[i], [shapes[r] for r in refs[i] if r in shapes])
        if len(node.in_shapes) != len(refs[i]):
            continue  # an input failed upstream; its issue is already reported
        in_steps = {r: steps[r] for r in refs[i]}
        if len(set(in_steps.values())) > 1:
            got = ", ".join(f"'{r}' T={t}" for r, t in in_steps.items())
            issues.append(locate(at(i, "inputs"), f"its inputs carry different numbers of time steps ({got})",
                                 "merge spiking branches with the same spike_encode steps, or read them out first "
                                 "with - {type: spike_readout}", layer.label()))
            continue
        node.steps = max(in_steps.values())
        try:
            node.out_steps = layer.out_steps(node.steps)
            node.out_shape = tuple(int(d) for d in layer.output_shape(node.in_shapes))
        except ShapeError as e:
            got = " and ".join(str(tuple(s)) for s in node.in_shapes)
            issues.append(locate(at(i), f"{e.message} (input shape{'s' if len(node.in_shapes) > 1 else ''}: {got})",
                                 e.hint, layer.label()))
            continue
        if any(d < 1 for d in node.out_shape):
            issues.append(locate(at(i), f"output shape {node.out_shape} has an empty axis (input {node.in_shapes})",
                                 "use a smaller kernel/pool or 'same' padding", layer.label()))
            continue
        shapes[node.name] = node.out_shape
        steps[node.name] = node.out_steps
        nodes.append(node)

    outs = outputs or [names[-1]]
    for j, o in enumerate(outs):
        if o not in known:
            issues.append(locate(("model", "outputs") if outputs and len(outputs) == 1 else ("model", "outputs", j),
                                 f"unknown output '{o}'", suggest(o, sorted(known)), None))
        elif steps.get(o, 1) > 1:
            k = names.index(o)
            issues.append(locate(at(k), f"the model's output '{o}' still carries {steps[o]} time steps folded into "
                                 "the batch", "end the spiking part with - {type: spike_readout, reduce: mean}",
                                 layers[k].label()))
    if issues:
        return None, issues
    return Graph(dict(input_shapes), nodes, outs), []


@cache
def graph_module_class() -> type:
    """The nn.Module class of built models, created on first use so importing layerforge stays light (the
    one lazy-torch idiom for classes: a ``functools.cache``d factory, as in the layer families)."""
    from torch import nn

    class _GraphModule(nn.Module):
        """The model built from a spec: one submodule per layer, run in the graph's order."""

        def __init__(self, graph: Graph, modules: dict[str, nn.Module]) -> None:
            super().__init__()
            self.graph = graph
            self.input_names = list(graph.inputs)
            self.layers = nn.ModuleDict(modules)
            # Steps: (name, module, input names, names whose last use this is: freed after the step).
            last_use: dict[str, str] = {}
            for n in graph.nodes:
                for r in n.inputs:
                    last_use[r] = n.name
            keep = set(graph.outputs)
            self._steps = [
                (n.name, n.inputs, [r for r in dict.fromkeys(n.inputs) if last_use.get(r) == n.name and r not in keep])
                for n in graph.nodes
            ]
            # A plain chain (each layer reads the previous one, single input/output) runs as a tight loop.
            names = [n.name for n in graph.nodes]
            self._chain = (
                len(graph.inputs) == 1
                and graph.outputs == names[-1:]
                and all(n.inputs == ([self.input_names[0]] if k == 0 else [names[k - 1]]) for k, n in enumerate(graph.nodes))
            )
            self._chain_modules = list(self.layers.values()) if self._chain else []

        def forward(self, *args: "torch.Tensor", **kwargs: "torch.Tensor"):
            if self._chain and len(args) == 1 and not kwargs:
                x = args[0]
                for m in self._chain_modules:
                    x = m(x)
                return x
            values: dict[str, Any] = dict(zip(self.input_names, args))
            values.update(kwargs)
            missing = [n for n in self.input_names if n not in values]
            if missing:
                raise TypeError(f"missing model input(s): {', '.join(missing)} (inputs: {', '.join(self.input_names)})")
            for name, ins, free in self._steps:
                values[name] = self.layers[name](*[values[r] for r in ins])
                for r in free:
                    del values[r]
            outs = tuple(values[o] for o in self.graph.outputs)
            return outs[0] if len(outs) == 1 else outs

    return _GraphModule


def param_counts(graph: Graph) -> dict[str, tuple[int, int, int]]:
    """Per layer: (parameters, trainable parameters, buffer elements), built on the meta device (nothing
    is allocated)."""
    import torch

    out: dict[str, tuple[int, int, int]] = {}
    with torch.device("meta"):
        for n in graph.nodes:
            m = n.build()
            total = sum(p.numel() for p in m.parameters())
            train = sum(p.numel() for p in m.parameters() if p.requires_grad)
            bufs = sum(b.numel() for b in m.buffers())
            out[n.name] = (total, train, bufs)
    return out


def build_module(graph: Graph) -> "nn.Module":
    """Build every layer for its inferred input shapes and wire them into one module (unseeded: the front
    door's :func:`layerforge.build.module` seeds first)."""
    modules = {n.name: n.build() for n in graph.nodes}
    return graph_module_class()(graph, modules)


def example_graph(cls: type[LayerSpec]) -> Graph:
    """A one-layer model of a layer type's ``example`` reading its ``example_inputs`` (inputs ``input``,
    ``in1``, ...); a layer over time steps gets a ``spike_encode`` before it and a ``spike_readout`` after
    it, as a spec would. Used to measure every registered type the same way."""
    import yaml

    from .layers.registry import get_layer_type

    (item,) = yaml.safe_load(cls.example)
    layer = cls.model_validate(item)
    shapes = {f"in{i}" if i else "input": tuple(s) for i, s in enumerate(cls.example_inputs)}
    if len(shapes) > 1:
        layer = layer.model_copy(update={"inputs": list(shapes)})
    layers = [layer]
    if cls.example_steps > 1:
        steps = {"type": "spike_encode", "steps": cls.example_steps}
        layers.insert(0, get_layer_type("spike_encode").model_validate(steps))
    if layer.out_steps(cls.example_steps) > 1:
        layers.append(get_layer_type("spike_readout").model_validate({"type": "spike_readout"}))
    graph, issues = plan(shapes, layers, None, lambda path, msg, hint, layer: Issue(msg, path, hint, layer=layer))
    if graph is None or issues:
        raise ShapeError(f"{cls.type_name}: its example does not plan: {'; '.join(i.message for i in issues)}")
    return graph
