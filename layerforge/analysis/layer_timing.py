"""Per-layer forward and backward times, each layer timed on its own with the inputs it really receives.

Method (module-level timing): one forward pass of the whole model captures every layer's inputs (forward
pre-hooks on ``model.layers[name]``, the tensors cloned and detached, with their ``requires_grad`` flag as
in the real pass). Each layer is then timed alone with the adaptive timer:

- forward (inference): ``module(*inputs)`` in eval mode under ``torch.inference_mode()``;
- forward (train): the same in train mode with autograd recording, inputs that need a gradient in the
  model needing one here;
- backward: an untimed forward, then ``torch.autograd.backward(outputs, ones)`` timed: the gradient with
  respect to the parameters and to the inputs that need one, exactly the work backward does for this
  layer inside the model.

Why not hooks around the layers during a whole-model run: hook callbacks (and on CUDA a synchronisation
in each) would run inside the timed region and slow every layer by the same fixed cost, and backward hooks
cannot time a layer's weight-gradient work reliably (``register_full_backward_hook`` fires when the input
gradients are ready, which for the first layer is never). Timing layers alone gives each its own median and
IQR; the price is that cache effects between layers and cross-layer fusion (torch.compile) are not seen,
which the report's sum check (Σ layers vs end to end) exposes.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ContextManager

from .timing import Stats, TimingSettings, measure

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass
class LayerTimes:
    forward: Stats | None = None  # inference
    forward_train: Stats | None = None
    backward: Stats | None = None  # None: nothing in the layer needs a gradient


def tensors_of(out: Any) -> list["torch.Tensor"]:
    import torch

    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in tensors_of(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in tensors_of(o)]
    return []


def capture_inputs(
    model: "nn.Module", inputs: list["torch.Tensor"], *, train: bool, autocast: Callable[[], ContextManager[None]]
) -> dict[str, list["torch.Tensor"]]:
    """Each layer's input tensors from one forward pass (detached clones; ``requires_grad`` as in the model)."""
    import torch

    captured: dict[str, list[torch.Tensor]] = {}
    handles = []

    def hook(name: str):
        def pre(_module: "nn.Module", args: tuple) -> None:
            ts = []
            for a in args:
                c = a.detach().clone()
                if train and a.requires_grad:
                    c.requires_grad_(True)
                ts.append(c)
            captured[name] = ts

        return pre

    for name, module in model.layers.items():
        handles.append(module.register_forward_pre_hook(hook(name)))
    try:
        model.train(train)
        ctx = contextlib.nullcontext() if train else torch.inference_mode()
        with ctx, autocast():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return captured


def time_layer_forward(
    module: "nn.Module", xs: list["torch.Tensor"], settings: TimingSettings, sync: Callable[[], None],
    autocast: Callable[[], ContextManager[None]],
) -> Stats:
    import torch

    module.eval()
    with torch.inference_mode(), autocast():
        return measure(lambda: module(*xs), settings, sync)


def time_layer_train(
    module: "nn.Module", xs: list["torch.Tensor"], settings: TimingSettings, sync: Callable[[], None],
    autocast: Callable[[], ContextManager[None]],
) -> tuple[Stats, Stats | None]:
    """Forward with autograd recording, then backward; backward is None when no output needs a gradient."""
    import torch

    module.train()
    with autocast():
        fwd = measure(lambda: module(*xs), settings, sync)
        probe = [t for t in tensors_of(module(*xs)) if t.requires_grad]
    if not probe:
        return fwd, None
    grads = [torch.ones_like(t) for t in probe]
    del probe
    params = [p for p in module.parameters() if p.requires_grad]
    leaves = [x for x in xs if x.requires_grad]
    state: dict[str, list[torch.Tensor]] = {}

    def setup() -> None:
        for t in (*params, *leaves):
            t.grad = None
        with autocast():
            state["outs"] = [t for t in tensors_of(module(*xs)) if t.requires_grad]

    def backward() -> None:
        torch.autograd.backward(state.pop("outs"), grads)

    bwd = measure(backward, settings, sync, setup=setup)
    for t in (*params, *leaves):
        t.grad = None
    return fwd, bwd


def time_layers(
    model: "nn.Module", inputs: list["torch.Tensor"], *, inference: bool, train: bool, settings: TimingSettings,
    sync: Callable[[], None], autocast: Callable[[], ContextManager[None]],
    on_layer: Callable[[str], None] | None = None,
) -> dict[str, LayerTimes]:
    """Times of every layer of a built graph module (``model.layers``), in graph order."""
    out: dict[str, LayerTimes] = {name: LayerTimes() for name in model.layers}
    if inference:
        xs_inf = capture_inputs(model, inputs, train=False, autocast=autocast)
        for name, module in model.layers.items():
            if on_layer:
                on_layer(f"{name} forward")
            out[name].forward = time_layer_forward(module, xs_inf[name], settings, sync, autocast)
        del xs_inf
    if train:
        xs_tr = capture_inputs(model, inputs, train=True, autocast=autocast)
        for name, module in model.layers.items():
            if on_layer:
                on_layer(f"{name} forward+backward")
            out[name].forward_train, out[name].backward = time_layer_train(
                module, xs_tr[name], settings, sync, autocast)
        del xs_tr
    model.train()
    return out
