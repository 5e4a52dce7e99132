"""The model graph: resolve each layer's inputs, order them, walk shapes, and build the nn.Module.

The shape walk uses each layer type's pure ``output_shape``, so a spec is checked before any weight
exists; ``build_module`` then makes an ordinary ``torch.nn.Module`` whose submodules are named after the
spec's layers (``model.layers["conv1"]``).
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Callable

from .errors import Issue, ShapeError
from .layers.common import numel
from .layers.registry import OUTPUT_SEP, LayerSpec, Shape, split_ref
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
    # Padding masks (variable-length sequences): which inputs carry one, what the layer does with it
    # (LayerSpec.mask_mode: keep / use / consume / make; 'refuse' never reaches a planned node), and
    # whether the output carries one.
    in_masked: list[bool] = field(default_factory=list)
    mask_mode: str = "keep"
    out_masked: bool = False
    # Named extra outputs (LayerSpec.extra_outputs: a recurrent layer's final states with return_state) and
    # their shapes, in the order the module returns them after its main output; read as '<name>:<key>'.
    extra_shapes: dict[str, Shape] = field(default_factory=dict)

    @property
    def extra_refs(self) -> list[str]:
        """The references of the extra outputs ('enc:h', 'enc:c'), in the module's order."""
        return [f"{self.name}{OUTPUT_SEP}{k}" for k in self.extra_shapes]

    def build(self) -> "nn.Module":
        """The layer's module for its input shapes (and its input's time steps, for time-aware layers),
        with the weight options every layer shares applied: its initializers, then ``trainable: false``."""
        from .layers.weights import finish

        if type(self.layer).time_aware:
            return finish(self.layer, self.layer.build(self.in_shapes, steps=self.steps))  # type: ignore[call-arg]
        return finish(self.layer, self.layer.build(self.in_shapes))

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
        """Output elements per sample (all time steps), extra outputs included."""
        return (numel(self.out_shape) + sum(numel(s) for s in self.extra_shapes.values())) * self.out_steps


@dataclass
class Graph:
    """Inputs, nodes in execution order (with shapes), and output names."""

    inputs: dict[str, Shape]
    nodes: list[Node]
    outputs: list[str]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def shape_of(self, ref: str) -> Shape:
        """The per-sample shape of a model input, a layer's output or a layer's extra output ('enc:h')."""
        if ref in self.inputs:
            return self.inputs[ref]
        name, part = split_ref(ref)
        node = self.node(name)
        return node.out_shape if part is None else node.extra_shapes[part]

    def producer(self, ref: str) -> Node | None:
        """The layer whose output (or extra output) ``ref`` is; None for a model input."""
        return None if ref in self.inputs else self.node(split_ref(ref)[0])

    @property
    def multi_output(self) -> bool:
        """Whether a layer returns extra outputs (the executor then unpacks them)."""
        return any(n.extra_shapes for n in self.nodes)

    @property
    def masked(self) -> bool:
        """Whether any tensor of the graph carries a padding mask (the executor then tracks them)."""
        return any(n.out_masked or any(n.in_masked) for n in self.nodes)

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
            # a '.' in a written name is refused where blocks are expanded (spec/blocks.py): expanded
            # layers are named <use>.<k>.<layer> and nest as submodules (module_tree)
            if OUTPUT_SEP in layer.name:
                issues.append(locate(at(i, "name"), f"layer name '{layer.name}' contains '{OUTPUT_SEP}'",
                                     f"'{OUTPUT_SEP}' reads a layer's extra output (enc{OUTPUT_SEP}h): use '_'", layer.label()))
            elif layer.name in input_shapes:
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
                base = split_ref(ref)[0]
                if base not in known:
                    hint = suggest(base, sorted(known)) or f"known names: {', '.join(sorted(known))}"
                    issues.append(locate(at(i, "inputs", j), f"unknown input '{ref}'", hint, layer.label()))
                elif base == names[i]:
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

    # 3. Topological order (Kahn, stable: spec order among ready layers, a heap of indices: linear in
    # the layers and references); leftovers form a cycle.
    index = {n: i for i, n in enumerate(names)}
    deps = [{index[b] for r in refs[i] if (b := split_ref(r)[0]) in index} for i in range(len(layers))]
    waiting = [len(d) for d in deps]
    readers: list[list[int]] = [[] for _ in layers]
    for i in range(len(layers)):
        for d in deps[i]:
            readers[d].append(i)
    ready_heap = [i for i in range(len(layers)) if waiting[i] == 0]
    heapq.heapify(ready_heap)
    done: list[int] = []
    while ready_heap:
        nxt = heapq.heappop(ready_heap)
        done.append(nxt)
        for r in readers[nxt]:
            waiting[r] -= 1
            if waiting[r] == 0:
                heapq.heappush(ready_heap, r)
    if len(done) < len(layers):
        placed = set(done)
        pending = [i for i in range(len(layers)) if i not in placed]
        cyc = ", ".join(f"'{names[i]}'" for i in pending)
        issues.append(locate(at(pending[0], "inputs"), f"the layers {cyc} form a cycle (each waits on another)",
                             "a layer may only read model inputs or layers that do not depend on it", layers[pending[0]].label()))
        return None, issues

    # 4. Shapes, and the time steps folded into the batch (spiking layers).
    shapes: dict[str, Shape] = dict(input_shapes)
    steps: dict[str, int] = dict.fromkeys(input_shapes, 1)
    masked: dict[str, bool] = dict.fromkeys(input_shapes, False)
    nodes: list[Node] = []
    extras: dict[str, list[str]] = {}  # planned layer → its extra outputs' names
    for i in done:
        layer = layers[i]
        for j, r in enumerate(refs[i]):
            if r not in shapes and split_ref(r)[0] in shapes:  # a planned layer (or input) lacking that output
                issues.append(locate(at(i, "inputs", j), *_no_such_output(r, extras, layers, index), layer.label()))
        node = Node(names[i], layer, i, refs[i], [shapes[r] for r in refs[i] if r in shapes])
        if len(node.in_shapes) != len(refs[i]):
            continue  # an input failed upstream (its issue is already reported) or names no output
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
            node.extra_shapes = {k: tuple(int(d) for d in v) for k, v in layer.extra_outputs(node.in_shapes).items()}
        except ShapeError as e:
            got = " and ".join(str(tuple(s)) for s in node.in_shapes)
            issues.append(locate(at(i), f"{e.message} (input shape{'s' if len(node.in_shapes) > 1 else ''}: {got})",
                                 e.hint, layer.label()))
            continue
        if any(d < 1 for d in node.out_shape):
            issues.append(locate(at(i), f"output shape {node.out_shape} has an empty axis (input {node.in_shapes})",
                                 "use a smaller kernel/pool or 'same' padding", layer.label()))
            continue
        node.in_masked = [masked[r] for r in refs[i]]
        node.mask_mode = layer.mask_mode(node.in_shapes)
        if node.mask_mode == "refuse" and any(node.in_masked):
            src = next(r for r, m in zip(refs[i], node.in_masked) if m)
            issues.append(locate(at(i), f"its input '{src}' carries a padding mask (variable-length sequences), which "
                                 f"{layer.type} would ignore, mixing padded steps into the result",
                                 "reduce the sequence first with a mask-aware layer (a recurrent layer without "
                                 "return_sequences, or - {type: sequence_pool}); docs/sequences.md lists the layers "
                                 "that understand masks", layer.label()))
            continue
        node.out_masked = (node.mask_mode == "make" or (node.mask_mode == "keep" and any(node.in_masked))
                           or (node.mask_mode == "use" and node.in_masked[0]))
        shapes[node.name] = node.out_shape
        steps[node.name] = node.out_steps
        masked[node.name] = node.out_masked
        extras[node.name] = list(node.extra_shapes)
        for k, ref in zip(node.extra_shapes, node.extra_refs):
            shapes[ref], steps[ref], masked[ref] = node.extra_shapes[k], node.out_steps, False  # a state has no mask
        nodes.append(node)

    outs = outputs or [names[-1]]
    for j, o in enumerate(outs):
        where = ("model", "outputs") if outputs and len(outputs) == 1 else ("model", "outputs", j)
        base = split_ref(o)[0]
        if base not in known:
            issues.append(locate(where, f"unknown output '{o}'", suggest(base, sorted(known)), None))
        elif o not in shapes and base in shapes:
            issues.append(locate(where, *_no_such_output(o, extras, layers, index), None))
        elif steps.get(o, 1) > 1:
            k = names.index(base)
            issues.append(locate(at(k), f"the model's output '{o}' still carries {steps[o]} time steps folded into "
                                 "the batch", "end the spiking part with - {type: spike_readout, reduce: mean}",
                                 layers[k].label()))
    if issues:
        return None, issues
    return Graph(dict(input_shapes), nodes, outs), []


def _no_such_output(ref: str, extras: dict[str, list[str]], layers: list[LayerSpec],
                    index: dict[str, int]) -> tuple[str, str]:
    """Message and hint for a reference 'name:part' to an extra output that its layer (or input) lacks."""
    name, part = split_ref(ref)
    if name not in index:
        return (f"'{ref}' reads an extra output, but '{name}' is a model input, which has one value",
                f"read '{name}'")
    layer, have = layers[index[name]], extras.get(name, [])
    if not have:
        fix = (f"set return_state: true on '{name}'" if "return_state" in type(layer).model_fields
               else f"{layer.type} has one output: read '{name}'")
        return f"'{ref}' reads an extra output, but layer '{name}' ({layer.type}) has none", fix
    full = [f"{name}{OUTPUT_SEP}{k}" for k in have]
    return f"layer '{name}' ({layer.type}) has no output '{part}'", suggest(ref, full) or f"its extra outputs: {', '.join(full)}"


@cache
def graph_module_class() -> type:
    """The nn.Module class of built models, created on first use so importing layerforge stays light (the
    one lazy-torch idiom for classes: a ``functools.cache``d factory, as in the layer families)."""
    from torch import nn

    from .layers.weights import regularized
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
            # Padding masks travel beside the values (docs/sequences.md) and layers with extra outputs
            # return tuples: both run the general loop; every other graph keeps the plain one.
            self._masked = graph.masked
            self._general = graph.masked or graph.multi_output
            self._chain = (
                not self._general
                and len(graph.inputs) == 1
                and graph.outputs == names[-1:]
                and all(n.inputs == ([self.input_names[0]] if k == 0 else [names[k - 1]]) for k, n in enumerate(graph.nodes))
            )
            self._chain_modules = list(self.layers.values()) if self._chain else []
            # Frozen layers' running statistics stay in inference mode (Keras' BatchNormalization, trainable=False).
            self._inference_only = [m for m in self.layers.modules() if getattr(m, "frozen_stats", False)]
            # Regularized weights: (layer, parameter path inside it, l1, l2); see regularization_loss.
            self._penalties = [(n.name, path, r.l1, r.l2) for n in graph.nodes
                               for path, r in regularized(n.layer, self.layers[n.name]) if r.l1 or r.l2]

        def train(self, mode: bool = True) -> "_GraphModule":
            super().train(mode)
            for m in self._inference_only:
                m.train(False)
            return self

        @property
        def regularized(self) -> bool:
            """Whether the spec names a weight regularizer (on a trainable layer)."""
            return bool(self._penalties)

        def regularization_loss(self) -> "torch.Tensor | None":
            """Σ l1·Σ|w| + l2·Σw² over the regularized weights (Keras' semantics: no ½); None when none is."""
            total = None
            for layer, path, l1, l2 in self._penalties:
                w = self.layers[layer].get_parameter(path)
                term = (l1 * w.abs().sum() if l1 else 0) + (l2 * w.square().sum() if l2 else 0)
                total = term if total is None else total + term
            return total

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
            if self._general:
                self._run_general(values)
            else:
                for name, ins, free in self._steps:
                    values[name] = self.layers[name](*[values[r] for r in ins])
                    for r in free:
                        del values[r]
            outs = tuple(values[o] for o in self.graph.outputs)
            return outs[0] if len(outs) == 1 else outs

        def _run_general(self, values: dict[str, Any]) -> None:
            """The steps with padding masks beside the values (unless ``_masked`` is off: the memory
            estimate traces at full length) and extra outputs unpacked: a layer with extra outputs returns
            ``(output, *extras)``, stored under 'name:key' (``Node.extra_refs``)."""
            masks: dict[str, Any] = {}
            for (name, ins, free), node in zip(self._steps, self.graph.nodes):
                module, xs = self.layers[name], [values[r] for r in ins]
                got = [masks.get(r) for r in ins]
                if node.mask_mode in ("use", "consume") and any(m is not None for m in got):
                    out = module(*xs, masks=got)
                else:
                    out = module(*xs)
                if node.extra_shapes:
                    out, *extra = out
                    values.update(zip(node.extra_refs, extra))
                values[name] = out
                if self._masked:
                    _track_mask(masks, name, node.mask_mode, module, xs, got)
                for r in free:
                    del values[r]
                    masks.pop(r, None)

    return _GraphModule


def _track_mask(masks: dict[str, Any], name: str, mode: str, module: Any, xs: list, got: list) -> None:
    """Record the padding mask of layer ``name``'s output: the layer keeps, makes or drops its inputs'
    masks (``got``) as its ``mask_mode`` says (decided by ``plan``)."""
    if mode == "make":
        masks[name] = module.compute_mask(xs[0])
    elif mode == "use":
        if got[0] is not None:
            masks[name] = got[0]
    elif mode == "keep":
        present = [m for m in got if m is not None]
        if present:
            m = present[0]
            for other in present[1:]:
                m = m & other
            masks[name] = m



MAX_TENSORS_PER_LAYER = 4_096  # weight tensors one layer may create (a 256-layer bidirectional LSTM has 2,048)


class BuildRefused(Exception):
    """A layer could not be built on the meta device, or passed a bound while being built (see
    :func:`param_counts`); ``node`` is the layer, ``message`` and ``hint`` say why and what to do."""

    def __init__(self, node: Node, message: str, hint: str) -> None:
        super().__init__(message)
        self.node, self.message, self.hint = node, message, hint


class _Exceeded(Exception):
    pass


def _guarded_build(node: Node, max_elements: int | None) -> "nn.Module":
    """Build one layer (on the current default device) while counting every parameter and buffer it
    registers: past :data:`MAX_TENSORS_PER_LAYER` tensors or ``max_elements`` elements the build stops at
    once, so a layer asked for 10^8 stacked cells or 10^12 weights is refused in milliseconds."""
    from torch.nn.modules import module as torch_module

    seen = [0, 0]  # tensors, elements

    def count(module: Any, name: str, tensor: Any) -> None:
        if tensor is None:
            return
        seen[0] += 1
        seen[1] += tensor.numel()
        if seen[0] > MAX_TENSORS_PER_LAYER:
            raise _Exceeded(f"it creates more than {MAX_TENSORS_PER_LAYER:,} weight tensors")
        if max_elements is not None and seen[1] > max_elements:
            raise _Exceeded(f"its weights pass {max_elements:,} numbers")

    handles = [torch_module.register_module_parameter_registration_hook(count),
               torch_module.register_module_buffer_registration_hook(count)]
    try:
        return node.build()
    except _Exceeded as e:
        raise BuildRefused(node, f"this layer is too large: {e}", "reduce its sizes or counts") from None
    except (RuntimeError, OverflowError, ValueError, TypeError, MemoryError) as e:  # torch on impossible sizes
        why = ("its weights are too large for torch to describe" if "overflow" in str(e).lower()
               else "torch refused it")
        raise BuildRefused(node, f"this layer cannot be built for input {node.in_shapes}: {why} "
                           f"({type(e).__name__}: {str(e)[:160]})", "reduce its sizes, or check its parameters") from e
    finally:
        for h in handles:
            h.remove()


@cache
def reserved_names() -> frozenset[str]:
    """Names a layer cannot have: the attributes of the ``nn.ModuleDict`` that holds the layers (``update``,
    ``keys``, ``training``, ``forward``, ``cuda``, ``half``, ...), which torch refuses as submodule names.
    Read from torch itself, so a method a later torch adds is refused too."""
    from torch import nn

    return frozenset(dir(nn.ModuleDict()))


def _layer_key(n: Node) -> tuple:
    """Layers with the same type, parameters and input shapes build alike (a deep stack of equal blocks
    is counted once)."""
    return (type(n.layer), tuple((k, repr(v)) for k, v in n.layer if k not in ("name", "inputs")),
            tuple(map(tuple, n.in_shapes)), n.steps)


def param_counts(graph: Graph, max_elements: int | None = None) -> dict[str, tuple[int, int, int]]:
    """Per layer: (parameters, trainable parameters, buffer elements), built on the meta device (nothing
    is allocated). ``max_elements``: stop with :class:`BuildRefused` as soon as the model's parameters and
    buffers pass that many numbers; a layer torch cannot build at all raises it too."""
    import torch

    out: dict[str, tuple[int, int, int]] = {}
    known: dict[tuple, tuple[int, int, int]] = {}
    total = 0
    with torch.device("meta"):
        for n in graph.nodes:
            key = _layer_key(n)
            if key not in known:
                m = _guarded_build(n, None if max_elements is None else max_elements - total)
                total_params = sum(p.numel() for p in m.parameters())
                train = sum(p.numel() for p in m.parameters() if p.requires_grad)
                bufs = sum(b.numel() for b in m.buffers())
                known[key] = (total_params, train, bufs)
            out[n.name] = known[key]
            total += out[n.name][0] + out[n.name][2]
            if max_elements is not None and total > max_elements:
                raise BuildRefused(n, f"the model's weights pass {max_elements:,} numbers at this layer",
                                   "reduce units/filters or the input size")
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
