"""The model graph: resolve each layer's inputs, order them, walk shapes, and build the nn.Module.

The shape walk uses each layer type's pure ``output_shape``, so a spec is checked before any weight
exists; ``build_module`` then makes an ordinary ``torch.nn.Module`` whose submodules are named after the
spec's layers (``model.layers["conv1"]``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .errors import Issue, ShapeError
from .layers.registry import LayerSpec, Shape

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
                    from .layers.registry import suggest

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

    # 4. Shapes.
    shapes: dict[str, Shape] = dict(input_shapes)
    nodes: list[Node] = []
    for i in done:
        layer = layers[i]
        node = Node(names[i], layer, i, refs[i], [shapes[r] for r in refs[i] if r in shapes])
        if len(node.in_shapes) != len(refs[i]):
            continue  # an input failed upstream; its issue is already reported
        try:
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
        nodes.append(node)

    outs = outputs or [names[-1]]
    for j, o in enumerate(outs):
        if o not in known:
            from .layers.registry import suggest

            issues.append(locate(("model", "outputs") if outputs and len(outputs) == 1 else ("model", "outputs", j),
                                 f"unknown output '{o}'", suggest(o, sorted(known)), None))
    if issues:
        return None, issues
    return Graph(dict(input_shapes), nodes, outs), []


def _make_class():
    from torch import nn

    from .module_tree import layer_dict

    class _GraphModule(nn.Module):
        """The model built from a spec: one submodule per layer, run in the graph's order."""

        def __init__(self, graph: Graph, modules: dict[str, nn.Module]) -> None:
            super().__init__()
            self.graph = graph
            self.input_names = list(graph.inputs)
            self.layers = layer_dict(modules)  # flat by name; block layers (enc.0.attn) nested, see module_tree
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


_CLASS = None


def graph_module_class():
    """The nn.Module class of built models (created on first use so importing layerforge stays light)."""
    global _CLASS
    if _CLASS is None:
        _CLASS = _make_class()
    return _CLASS


def build_module(graph: Graph) -> "nn.Module":
    """Build every layer for its inferred input shapes and wire them into one module."""
    modules = {n.name: n.layer.build(n.in_shapes) for n in graph.nodes}
    return graph_module_class()(graph, modules)
