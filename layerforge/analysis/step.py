"""What a profiled step is made of, shared by the measurement (:mod:`.profiler`) and the traced estimate
(:mod:`.estimate`): random inputs, the stand-in loss, the optimizer."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .layer_timing import tensors_of

if TYPE_CHECKING:
    import torch

    from ..graph import Graph


def make_inputs(graph: "Graph", batch: int, device: str, seed: int = 0) -> list["torch.Tensor"]:
    """Random inputs, one per model input: integer ids drawn from the valid range of the layers reading the
    input (``LayerSpec.id_range``, e.g. an embedding's [0, input_dim)), standard normal values otherwise."""
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = graph.integer_inputs()
    out = []
    for name, shape in graph.inputs.items():
        if name in ids:
            x = torch.randint(*ids[name], (batch, *shape), generator=g)
        else:
            x = torch.randn(batch, *shape, generator=g)
        out.append(x.to(device))
    return out


def loss_of(out: Any) -> "torch.Tensor":
    ts = [t for t in tensors_of(out) if t.is_floating_point()]
    return sum(t.float().square().mean() for t in ts)  # type: ignore[return-value]


def make_optimizer(name: str, params: list["torch.nn.Parameter"]) -> "torch.optim.Optimizer":
    """The optimizer of the timed step, with the step implementation training would use (fused where torch
    has it: :func:`layerforge.runtime.optimizer_impl`)."""
    import torch

    from ..runtime import optimizer_impl

    impl, _ = optimizer_impl(name, "auto", params[0].device, params) if params else ("for-loop", "")
    kw = {"fused": True} if impl == "fused" else {}
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-3, **kw)
    return torch.optim.SGD(params, lr=1e-2, **kw)
