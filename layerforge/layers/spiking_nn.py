"""The torch modules behind the spiking layer types (:mod:`.spiking` declares them; this file is imported
only when a spiking model is built, so importing layerforge stays light).

Time travels folded into the batch, time-major: a tensor of T steps of a batch of B samples is
``(T·B, *shape)``, step t being rows ``t·B … t·B + B − 1``. ``x.unflatten(0, (T, -1))`` gives ``(T, B, *shape)``.
"""
from __future__ import annotations

import math

import torch
from torch import nn

SURROGATE_SLOPE = {"atan": 2.0, "fast_sigmoid": 25.0, "sigmoid": 25.0, "none": 0.0}


def surrogate_backward(kind: str, slope: float, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``grad`` times dS/dU, the derivative that replaces the Heaviside step's (zero almost everywhere),
    at x = U − θ:

    atan (Fang et al. 2021): α/2 / (1 + (π/2·α·x)²), the derivative of arctan(π/2·α·x)/π;
    fast_sigmoid (SuperSpike, Zenke & Ganguli 2018): 1 / (k·|x| + 1)²;
    sigmoid: k·e^(−k·x) / (e^(−k·x) + 1)², the derivative of σ(k·x);
    none: 0, the true derivative (nothing before the layer learns; for ablations).
    The formulas and their evaluation order are snnTorch 1.0's (snntorch.surrogate)."""
    if kind == "atan":
        return slope / 2 / (1 + (math.pi / 2 * slope * x).pow(2)) * grad
    if kind == "fast_sigmoid":
        return grad / (slope * x.abs() + 1.0) ** 2
    if kind == "sigmoid":
        e = torch.exp(-slope * x)
        return grad * slope * e / ((e + 1) ** 2)
    return torch.zeros_like(grad)


class SpikeFunction(torch.autograd.Function):
    """S = H(x) = 1 if x > 0 else 0 in the forward pass; the surrogate's derivative in the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, kind: str, slope: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.kind, ctx.slope = kind, slope
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return surrogate_backward(ctx.kind, ctx.slope, x, grad), None, None


def spike(x: torch.Tensor, kind: str = "atan", slope: float | None = None) -> torch.Tensor:
    """Heaviside spikes of ``x`` with a surrogate gradient (``slope`` None = the surrogate's default)."""
    return SpikeFunction.apply(x, kind, SURROGATE_SLOPE[kind] if slope is None else slope)


class SpikeEncoder(nn.Module):
    """(B, *shape) → (T·B, *shape): rate (Bernoulli), latency (one spike) or direct (the value repeated)."""

    def __init__(self, mode: str, steps: int, normalize: str, gain: float) -> None:
        super().__init__()
        self.mode, self.steps, self.normalize, self.gain = mode, steps, normalize, gain

    def extra_repr(self) -> str:
        return f"mode={self.mode}, steps={self.steps}, normalize={self.normalize}, gain={self.gain}"

    def probability(self, x: torch.Tensor) -> torch.Tensor:
        z = x * self.gain if self.gain != 1.0 else x
        return torch.sigmoid(z) if self.normalize == "sigmoid" else z.clamp(0.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = self.steps
        if self.mode == "direct":
            # repeat, not expand(T, ...).flatten(0, 1): the same rows, but torch.export cannot prove the
            # flattened view's size for every batch size, so a dynamic-batch export would fail
            return x.repeat(T, *([1] * (x.dim() - 1)))  # (T·B, *shape)
        p = self.probability(x)  # (B, *shape) in [0, 1]
        if self.mode == "rate":
            # torch's global generator: the engine's seed and its checkpointed RNG state cover it.
            s = (torch.rand((T, *p.shape), device=p.device, dtype=p.dtype) < p).to(p.dtype)  # (T, B, *shape)
            s = s + (p - p.detach())  # straight-through: value s, gradient 1 w.r.t. p (E[s] = p)
            return s.flatten(0, 1)
        # latency: one spike at t = round((T − 1)·(1 − p)), none where p = 0; no gradient (a step in p).
        fire = torch.round((T - 1) * (1.0 - p.detach()))  # (B, *shape)
        t = torch.arange(T, device=p.device, dtype=p.dtype).view(T, *([1] * p.dim()))
        s = ((t == fire) & (p.detach() > 0)).to(p.dtype)  # (T, B, *shape)
        return s.flatten(0, 1)


class LIFNeurons(nn.Module):
    """Leaky integrate-and-fire neurons over T steps folded into the batch; state starts at 0 every call.

    U[t] = β·U[t−1] + I[t] (+ V(S[t−1]) for recurrent feedback) − R[t−1]·θ (subtract), or
    β·(1 − R[t−1])·U[t−1] + I[t] (+ V(S[t−1])) (zero), or no reset term (none); S[t] = H(U[t] − θ);
    R = S, detached when ``detach_reset``. The operation order is snnTorch's ``Leaky``/``RLeaky``."""

    def __init__(self, shape: tuple[int, ...], steps: int, *, beta: float, learn_beta: bool, beta_per_neuron: bool,
                 threshold: float, reset: str, surrogate: str, slope: float | None, detach_reset: bool, output: str,
                 feedback: str | None = None, feedback_init: float = 1.0, learn_feedback: bool = True) -> None:
        super().__init__()
        self.steps, self.threshold, self.reset, self.detach_reset, self.output = steps, threshold, reset, detach_reset, output
        self.surrogate = surrogate
        self.slope = SURROGATE_SLOPE[surrogate] if slope is None else slope
        b = torch.full(shape, float(beta)) if beta_per_neuron else torch.tensor(float(beta))
        if learn_beta:
            self.beta = nn.Parameter(b)
        else:
            self.register_buffer("beta", b)
        self.feedback = feedback
        if feedback == "all_to_all":
            self.recurrent = nn.Linear(shape[-1], shape[-1])  # V: a learned F×F matrix and bias
            self.recurrent.requires_grad_(learn_feedback)
        elif feedback == "one_to_one":
            self.v = nn.Parameter(torch.full(shape, float(feedback_init)), requires_grad=learn_feedback)

    def extra_repr(self) -> str:
        return (f"steps={self.steps}, threshold={self.threshold}, reset={self.reset}, surrogate={self.surrogate}"
                f"(slope={self.slope}), detach_reset={self.detach_reset}, output={self.output}"
                + (f", feedback={self.feedback}" if self.feedback else ""))

    def _feedback(self, s: torch.Tensor) -> torch.Tensor:
        return self.recurrent(s) if self.feedback == "all_to_all" else self.v * s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = x.unflatten(0, (self.steps, -1))  # (T, B, *shape)
        beta = self.beta.clamp(0, 1)
        u = torch.zeros_like(xs[0])  # (B, *shape): U[−1] = 0, S[−1] = 0
        s = torch.zeros_like(xs[0])
        need_spikes = self.output == "spikes" or self.reset != "none" or self.feedback is not None
        out = []
        for t in range(self.steps):
            r = s.detach() if self.detach_reset else s
            if self.reset == "zero":
                u = beta * ((1 - r) * u) + xs[t]
            else:
                u = beta * u + xs[t]
            if self.feedback is not None:
                u = u + self._feedback(s)
            if self.reset == "subtract":
                u = u - r * self.threshold
            if need_spikes:
                s = spike(u - self.threshold, self.surrogate, self.slope)
            out.append(s if self.output == "spikes" else u)
        return torch.stack(out).flatten(0, 1)  # (T·B, *shape)


class SpikeReadout(nn.Module):
    """(T·B, *shape) → (B, *shape): the mean, sum, max or last value over the T steps."""

    def __init__(self, steps: int, reduce: str) -> None:
        super().__init__()
        self.steps, self.reduce = steps, reduce

    def extra_repr(self) -> str:
        return f"steps={self.steps}, reduce={self.reduce}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = x.unflatten(0, (self.steps, -1))  # (T, B, *shape)
        if self.reduce == "mean":
            return xs.mean(0)
        if self.reduce == "sum":
            return xs.sum(0)
        if self.reduce == "max":
            return xs.amax(0)
        return xs[-1]
