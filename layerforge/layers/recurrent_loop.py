"""The step-by-step recurrence for what torch's fused RNN/LSTM/GRU kernels cannot run: other activations,
recurrent dropout, GRU with ``reset_after: false``.

It reads the weights of the torch module it stands in for (``weight_ih_l0``, ``bias_hh_l0_reverse``, …),
so a model's parameters, state dict and counts do not depend on which path runs, and with the default
options the loop computes exactly what the fused kernel does (tests/layers/test_recurrent_options.py).
It is a Python loop over time steps: on a CPU several times slower than the fused kernel for short
sequences, and on a GPU it loses cuDNN (docs/sequences.md has the measured cost).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch
    from torch import nn

ACTIVATIONS = ("tanh", "sigmoid", "hard_sigmoid", "relu", "linear", "softsign")


def activation_fn(name: str) -> Callable[["torch.Tensor"], "torch.Tensor"]:
    """The elementwise function of an activation name (hard_sigmoid = relu6(x + 3) / 6, as Keras 3)."""
    import torch
    import torch.nn.functional as F

    return {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "hard_sigmoid": F.hardsigmoid, "relu": torch.relu,
            "linear": lambda x: x, "softsign": F.softsign}[name]


def reverse_valid(x: "torch.Tensor", lengths: "torch.Tensor") -> "torch.Tensor":
    """x (B, T, F) with each sequence's first lengths[b] steps reversed and its padding left in place."""
    import torch

    t = torch.arange(x.shape[1], device=x.device).unsqueeze(0)  # (1, T)
    n = lengths.unsqueeze(1)  # (B, 1)
    idx = torch.where(t < n, n - 1 - t, t)  # (B, T)
    return x.gather(1, idx.unsqueeze(-1).expand_as(x))


def valid_first(mask: "torch.Tensor") -> "torch.Tensor | None":
    """The per-row step order (B, T) that moves a mask's valid steps to the front, in time order, when they
    are not there already (left padding, ``data.padding: pre``), else None. The recurrent layers pack
    sequences by length, so they run on the reordered steps and put the outputs back (:func:`steps_at`)."""
    import torch

    lengths = mask.sum(dim=1, keepdim=True)  # (B, 1)
    if bool((mask == (torch.arange(mask.shape[1], device=mask.device) < lengths)).all()):
        return None  # right-padded: nothing to move
    return torch.argsort((~mask).to(torch.uint8), dim=1, stable=True)  # (B, T): valid steps first


def steps_at(x: "torch.Tensor", order: "torch.Tensor", inverse: bool = False) -> "torch.Tensor":
    """x (B, T, …) with its steps taken in ``order`` (B, T); ``inverse``: put steps taken that way back."""
    idx = order.reshape(*order.shape, *(1,) * (x.dim() - 2)).expand_as(x)
    return x.scatter(1, idx, x) if inverse else x.gather(1, idx)


def run_loop(rnn: "nn.RNNBase", kind: str, x: "torch.Tensor", lengths: "torch.Tensor | None", activation: str,
             recurrent_activation: str, reset_after: bool, recurrent_dropout: float, training: bool,
             h0: "torch.Tensor | None" = None, c0: "torch.Tensor | None" = None
             ) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor | None"]:
    """Run ``rnn``'s weights over x (B, T, F) step by step, from the initial states h0, c0 (layers·dirs,
    B, H; None: zeros), as torch's modules take them. Returns the output sequence (B, T, H·dirs), 0 at
    padded steps, and each direction's final h and (LSTM, else None) c (layers·dirs, B, H), taken at its
    last valid step."""
    import torch
    import torch.nn.functional as F

    b, t = x.shape[0], x.shape[1]
    n = lengths if lengths is not None else torch.full((b,), t, dtype=torch.long, device=x.device)
    valid = torch.arange(t, device=x.device)[None, :] < n[:, None]  # (B, T)
    act, ract = activation_fn(activation), activation_fn(recurrent_activation)
    dirs = 2 if rnn.bidirectional else 1
    finals, cells = [], []
    seq = x
    for layer in range(rnn.num_layers):
        outs = []
        for d in range(dirs):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            w_ih, w_hh = getattr(rnn, "weight_ih" + sfx), getattr(rnn, "weight_hh" + sfx)
            b_ih = getattr(rnn, "bias_ih" + sfx) if rnn.bias else None
            b_hh = getattr(rnn, "bias_hh" + sfx) if rnn.bias else None
            inp = reverse_valid(seq, n) if d else seq
            keep = None
            if training and recurrent_dropout > 0:  # one mask on h_{t-1} for every step, as Keras
                keep = F.dropout(torch.ones(b, rnn.hidden_size, device=x.device, dtype=x.dtype), recurrent_dropout)
            k = layer * dirs + d
            init = (None if h0 is None else h0[k], None if c0 is None else c0[k])
            y, h, c = _direction(kind, inp, valid, w_ih, w_hh, b_ih, b_hh, act, ract, reset_after, keep, init)
            outs.append(reverse_valid(y, n) if d else y)
            finals.append(h)
            cells.append(c)
        seq = torch.cat(outs, dim=-1)  # (B, T, H·dirs)
        if training and rnn.dropout > 0 and layer < rnn.num_layers - 1:
            seq = F.dropout(seq, rnn.dropout)
    return seq, torch.stack(finals), torch.stack(cells) if kind == "lstm" else None


def _direction(kind: str, x: "torch.Tensor", valid: "torch.Tensor", w_ih: "torch.Tensor", w_hh: "torch.Tensor",
               b_ih: "torch.Tensor | None", b_hh: "torch.Tensor | None", act: Callable, ract: Callable,
               reset_after: bool, keep: "torch.Tensor | None",
               init: tuple["torch.Tensor | None", "torch.Tensor | None"]
               ) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """One direction of one layer from the initial (h, c) (B, H; None: zeros): outputs (B, T, H) and the
    h and c after each sequence's last valid step."""
    import torch
    import torch.nn.functional as F

    b, t = x.shape[0], x.shape[1]
    hsz = w_hh.shape[1]
    xw = F.linear(x, w_ih, b_ih)  # (B, T, G·H): every step's input projection at once
    h = x.new_zeros(b, hsz) if init[0] is None else init[0]
    c = x.new_zeros(b, hsz) if init[1] is None else init[1]
    ys = []
    for s in range(t):
        hd = h if keep is None else h * keep
        gx = xw[:, s]  # (B, G·H)
        if kind == "simple_rnn":
            h_new = act(gx + F.linear(hd, w_hh, b_hh))
        elif kind == "lstm":
            i, f, g, o = (gx + F.linear(hd, w_hh, b_hh)).chunk(4, dim=-1)
            c_new = ract(f) * c + ract(i) * act(g)
            h_new = ract(o) * act(c_new)
            c = torch.where(valid[:, s, None], c_new, c)
        else:  # gru, torch's gate order r, z, n
            xr, xz, xn = gx.chunk(3, dim=-1)
            wr, wz, wn = w_hh.chunk(3, dim=0)
            br, bz, bn = b_hh.chunk(3) if b_hh is not None else (None, None, None)
            r = ract(xr + F.linear(hd, wr, br))
            z = ract(xz + F.linear(hd, wz, bz))
            n = act(xn + (r * F.linear(hd, wn, bn) if reset_after else F.linear(r * hd, wn, bn)))
            h_new = (1 - z) * n + z * h
        h = torch.where(valid[:, s, None], h_new, h)  # past a sequence's end its state stays
        ys.append(h_new * valid[:, s, None].to(h_new.dtype))
    return torch.stack(ys, dim=1), h, c
