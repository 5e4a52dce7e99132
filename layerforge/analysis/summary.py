"""A model summary like Keras' ``model.summary()`` / torchinfo: per-layer output shape, parameters and
exact analytic FLOPs, plus totals and memory. Parameters are counted on the meta device, so a summary
allocates no weights.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..graph import Graph, param_counts
from ..layers.common import numel
from ..spec.schema import Spec


@dataclass
class LayerRow:
    name: str
    type: str
    inputs: list[str]
    output_shape: list[int]  # with the batch axis first
    params: int
    trainable_params: int
    flops: int | None  # forward FLOPs for the whole batch; None = uncounted
    backward_flops: int | None
    info: dict[str, Any] = field(default_factory=dict)  # the layer type's extra_info (per sample; e.g. a compression ratio)
    steps: int = 1  # spiking: time steps T folded into the output's batch axis (output_shape[0] = batch·T)
    extra_outputs: dict[str, list[int]] = field(default_factory=dict)  # 'enc:h' → its shape (return_state)

    def shape_text(self, sep: str = ", ") -> str:
        """The output shape, then each extra output's: '[32, 64], enc:h [32, 64], enc:c [32, 64]'."""
        return sep.join([str(self.output_shape), *(f"{k} {v}" for k, v in self.extra_outputs.items())])


@dataclass
class Summary:
    name: str
    batch_size: int
    input_shape: dict[str, list[int]]
    layers: list[LayerRow]
    total_params: int
    trainable_params: int
    non_trainable_params: int
    buffer_elements: int
    param_bytes: int
    activation_bytes: int  # forward outputs kept for backward, fp32, for this batch
    flops: int  # counted forward FLOPs for the batch
    backward_flops: int
    uncounted: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        shapes = self.input_shape
        d["input_shape"] = next(iter(shapes.values())) if list(shapes) == ["input"] else shapes
        return d


def summarize(spec: Spec, graph: Graph, batch_size: int = 1, dtype_bytes: int = 4) -> Summary:
    counts = param_counts(graph)
    rows: list[LayerRow] = []
    uncounted: list[str] = []
    for n in graph.nodes:
        f = n.flops()
        b = n.backward_flops()
        if f is None:
            uncounted.append(n.name)
        p, t, _ = counts[n.name]
        rows.append(LayerRow(n.name, n.layer.type, list(n.inputs), [batch_size * n.out_steps, *n.out_shape], p, t,
                             None if f is None else f * batch_size, None if b is None else b * batch_size,
                             n.layer.extra_info(n.in_shapes, n.out_shape), n.out_steps,
                             {ref: [batch_size * n.out_steps, *s] for ref, s in zip(n.extra_refs, n.extra_shapes.values())}))
    total = sum(c[0] for c in counts.values())
    train = sum(c[1] for c in counts.values())
    bufs = sum(c[2] for c in counts.values())
    inputs_el = sum(numel(s) for s in graph.inputs.values())
    act = (sum(n.out_elements for n in graph.nodes) + inputs_el) * batch_size * dtype_bytes
    return Summary(
        name=spec.name, batch_size=batch_size,
        input_shape={k: list(v) for k, v in graph.inputs.items()},
        layers=rows, total_params=total, trainable_params=train, non_trainable_params=total - train,
        buffer_elements=bufs, param_bytes=(total + bufs) * dtype_bytes, activation_bytes=act,
        flops=sum(r.flops or 0 for r in rows), backward_flops=sum(r.backward_flops or 0 for r in rows),
        uncounted=uncounted,
    )

