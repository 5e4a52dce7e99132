"""Spiking layers: encode a static input into T time steps, leaky integrate-and-fire neurons trained with
surrogate gradients (backpropagation through time), and a readout back to one value per sample.

**The time axis.** ``spike_encode`` repeats each sample over T steps and folds them into the batch,
time-major: the tensor between it and the ``spike_readout`` is ``(T·B, *shape)``, so per-sample shapes
are unchanged and ``dense``, ``conv2d``, pooling, ``flatten``, ``batchnorm`` … between them work as they are,
each time step like another sample. The graph records T on every node (``Node.steps``); the summary,
profile and memory estimates multiply those layers' FLOPs and activations by T, and ``lif`` and
``spike_readout`` receive T at build time to unfold it. The torch modules are in :mod:`.spiking_nn`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from ..errors import ShapeError
from .common import numel
from .registry import LayerSpec, Shape, register

if TYPE_CHECKING:
    from torch import nn

_ENCODE_HINT = "put - {type: spike_encode, mode: rate, steps: 8} before the spiking layers"


class SpikingLayer(LayerSpec):
    """Base of the spiking family: what the spike/energy analysis (layerforge.analysis.spiking) asks."""

    def emits_spikes(self) -> bool:
        """True when the output is binary spikes (0/1), whose synaptic operations are accumulates."""
        return False


@register("spike_encode", family="spiking")
class SpikeEncode(SpikingLayer):
    """Spike encoding: turn a static input into T time steps (rate, latency or direct coding).

    **Formula.** p = clamp(g·x, 0, 1) (or σ(g·x) with `normalize: sigmoid`), g = `gain`, then for
    t = 0 … T−1:
    - `rate`: S[t] ~ Bernoulli(p), independently per step and element (torch's global generator, so the
      spec's seed and the checkpointed RNG state make runs and resumes exact); the gradient passes
      straight through to p (E[S[t]] = p).
    - `latency`: one spike at t = round((T−1)·(1−p)), earlier for larger p; no spike where p = 0. No gradient.
    - `direct`: x itself at every step (no spikes: the first layer integrates the analog value); `gain`
      and `normalize` do not apply.

    Rate and latency coding read probabilities in [0, 1]. Inputs are clamped by default, so scale them
    to [0, 1] first: e.g. `data: {standardize: false}` and `gain: 0.0625` for the digits' pixel counts 0–16.
    For standardised inputs use `normalize: sigmoid` (x = 0, the mean, becomes p = 0.5).

    **Time.** The T steps are folded into the batch, time-major: (B, *shape) → (T·B, *shape). Layers up
    to the `spike_readout` run on every step like extra samples, with their FLOPs multiplied by T.

    **Shapes.** any shape → the same per-sample shape, T steps. No parameters.

    **FLOPs** per sample, n = input elements: rate n·(T + c), latency n·(2T + 4 + c), direct 0, where
    c = 1 for the clamp/sigmoid, + 1 when gain ≠ 1 (drawing random numbers is not counted). Backward:
    rate T·n (summing the steps' gradients), latency 0, direct T·n.

    **Equivalents.** snnTorch `spikegen.rate(x, num_steps=T)` / `spikegen.latency(x, num_steps=T,
    linear=True, normalize=True)` / `x.repeat(T, 1, ...)`; SpikingJelly `encoding.PoissonEncoder` (one step
    per call) and its direct-input convention.
    """

    example = "- {type: spike_encode, mode: rate, steps: 8, gain: 0.0625}"
    example_inputs = [(1, 8, 8)]

    mode: Literal["rate", "latency", "direct"] = Field(
        default="rate", description="rate (Bernoulli spikes, probability = input), latency (one spike, earlier "
        "for larger inputs) or direct (the input repeated; the first layer integrates it).")
    steps: PositiveInt = Field(default=8, description="Time steps T the spiking part of the model runs for.")
    normalize: Literal["clamp", "sigmoid"] = Field(
        default="clamp", description="How gain·x becomes a probability in [0, 1] (rate, latency): clamp (inputs "
        "already scaled to [0, 1]) or sigmoid (standardised inputs).")
    gain: PositiveFloat = Field(default=1.0, description="Factor applied to the input before `normalize` (rate, "
                                "latency), e.g. 0.0625 to map pixel counts 0–16 to [0, 1].")

    @model_validator(mode="after")
    def _direct_takes_no_scaling(self) -> "SpikeEncode":
        if self.mode == "direct" and ({"normalize", "gain"} & self.model_fields_set):
            raise ValueError("gain and normalize apply to rate and latency coding; direct coding passes the input "
                             "unchanged (scale it in the data, or remove gain/normalize)")
        return self

    def emits_spikes(self) -> bool:
        return self.mode != "direct"

    def out_steps(self, steps: int) -> int:
        if steps > 1:
            raise ShapeError(f"its input already carries {steps} time steps (an earlier spike_encode)",
                             hint="encode once: remove this spike_encode, or read the first one out with spike_readout")
        return self.steps

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        return tuple(in_shapes[0])

    def build(self, in_shapes: list[Shape]) -> "nn.Module":
        from .spiking_nn import SpikeEncoder

        return SpikeEncoder(self.mode, self.steps, self.normalize, self.gain)

    def _normalize_flops(self) -> int:
        return 1 + (1 if self.gain != 1.0 else 0)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        n, T = numel(in_shapes[0]), self.steps
        if self.mode == "rate":
            return n * (T + self._normalize_flops())
        if self.mode == "latency":
            return n * (2 * T + 4 + self._normalize_flops())
        return 0

    def backward_flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return 0 if self.mode == "latency" else numel(in_shapes[0]) * self.steps


def _needs_steps(steps: int, what: str) -> None:
    if steps < 2:
        raise ShapeError(f"{what} runs over time steps, but its input carries none", hint=_ENCODE_HINT)


@register("lif", family="spiking")
class LIF(SpikingLayer):
    """Leaky integrate-and-fire neurons: integrate the input over T steps, spike at the threshold.

    **Formula.** For each neuron (element of the input), with input current I[t] (the previous layer's
    output at step t), β = clamp(`beta`, 0, 1), θ = `threshold`, U[−1] = S[−1] = 0:
    - reset `subtract`: U[t] = β·U[t−1] + I[t] − S[t−1]·θ
    - reset `zero`:     U[t] = β·(1 − S[t−1])·U[t−1] + I[t]
    - reset `none`:     U[t] = β·U[t−1] + I[t]
    - S[t] = H(U[t] − θ) (1 when U[t] > θ, else 0).

    The backward pass replaces H′ (zero almost everywhere) by the `surrogate`'s derivative at x = U − θ,
    with slope α or k: atan α/2 / (1 + (π/2·α·x)²) (default α = 2); fast_sigmoid 1 / (k·|x| + 1)² (k = 25);
    sigmoid k·e^(−k·x) / (1 + e^(−k·x))² (k = 25); none 0 (the true derivative: nothing upstream learns).
    `detach_reset` (default, as snnTorch) stops the gradient through the reset term S[t−1].
    The state starts at 0 on every forward call: nothing leaks between batches, evaluate and predict.
    `output: membrane` returns U[t] instead of S[t]: with `reset: none` the layer is a leaky integrator,
    the usual non-spiking readout (`spike_readout` with `reduce: max` or `mean` over it gives the logits).

    **Time.** Needs an input from a `spike_encode` (T steps folded into the batch); unfolds them, runs
    the recurrence, folds them back: (T·B, *shape) → (T·B, *shape).

    **Shapes.** any shape → the same shape. Parameters: β is one number (`beta_per_neuron: false`) or one
    per input element; a parameter with `learn_beta`, else a buffer.

    **FLOPs** per neuron per step: 6 with reset subtract or zero (β·U, + I, U − θ, the compare, and the
    reset's two), 4 with reset none, 2 for `output: membrane` with `reset: none` (no spikes are made).
    Times T and the neurons (β's clamp, once per batch, is not counted). Backward: 2 × forward.

    **Equivalents.** snnTorch `snn.Leaky(beta, threshold, spike_grad=surrogate.atan(alpha=2),
    reset_mechanism=reset, learn_beta=...)` called once per step (traces equal exactly, see
    tests/layers/test_spiking_reference.py); SpikingJelly `neuron.LIFNode(tau=1/(1−β), decay_input=False,
    v_reset=None or 0.0, detach_reset=..., step_mode='m')` (close: it resets within the step, so its reset
    is also decayed by β).
    """

    time_aware = True
    example = "- {type: lif, beta: 0.9, threshold: 1.0, reset: subtract, surrogate: atan}"
    example_inputs = [(16,)]
    example_steps = 4

    beta: float = Field(default=0.9, description="Membrane decay β per step, in [0, 1] (1 = no leak: integrate-and-fire).")
    learn_beta: bool = Field(default=False, description="Learn β (clamped to [0, 1] in the forward pass).")
    beta_per_neuron: bool = Field(default=False, description="One β per neuron (input element) instead of one "
                                  "for the layer.")
    threshold: PositiveFloat = Field(default=1.0, description="Firing threshold θ.")
    reset: Literal["subtract", "zero", "none"] = Field(
        default="subtract", description="After a spike: subtract θ from the membrane, set it to zero, or nothing.")
    surrogate: Literal["atan", "fast_sigmoid", "sigmoid", "none"] = Field(
        default="atan", description="Surrogate derivative of the spike in the backward pass (none = zero: an "
        "ablation in which nothing before the layer learns).")
    slope: PositiveFloat | None = Field(default=None, description="The surrogate's sharpness: α for atan (default 2), "
                                        "k for fast_sigmoid and sigmoid (default 25).")
    detach_reset: bool = Field(default=True, description="No gradient through the reset term (snnTorch's "
                               "behaviour; SpikingJelly's default is false).")
    output: Literal["spikes", "membrane"] = Field(default="spikes", description="Return the spikes S[t], or the "
                                                  "membrane potential U[t] (a readout layer).")

    @field_validator("beta")
    @classmethod
    def _beta_in_range(cls, v: float) -> float:
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"beta is the membrane's decay per step and must be in [0, 1], got {v}")
        return v

    def emits_spikes(self) -> bool:
        return self.output == "spikes"

    def out_steps(self, steps: int) -> int:
        _needs_steps(steps, self.type)
        return steps

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        return tuple(in_shapes[0])

    def _options(self) -> dict:
        return dict(beta=self.beta, learn_beta=self.learn_beta, beta_per_neuron=self.beta_per_neuron,
                    threshold=self.threshold, reset=self.reset, surrogate=self.surrogate, slope=self.slope,
                    detach_reset=self.detach_reset, output=self.output)

    def build(self, in_shapes: list[Shape], steps: int = 1) -> "nn.Module":
        from .spiking_nn import LIFNeurons

        return LIFNeurons(tuple(in_shapes[0]), steps, **self._options())

    def step_flops(self, shape: Shape) -> int:
        """Forward FLOPs of one time step of one sample."""
        if self.reset == "none":
            per = 2 if self.output == "membrane" else 4
        else:
            per = 6
        return per * numel(shape)

    def flops(self, in_shapes: list[Shape], out_shape: Shape, steps: int = 1) -> int:
        return steps * self.step_flops(in_shapes[0])

    def backward_flops(self, in_shapes: list[Shape], out_shape: Shape, steps: int = 1) -> int:
        return 2 * self.flops(in_shapes, out_shape, steps)


@register("rlif", family="spiking")
class RLIF(LIF):
    """Recurrent leaky integrate-and-fire neurons: a LIF whose spikes feed back through learned weights.

    **Formula.** As `lif`, with the previous step's spikes fed back: U[t] = β·U[t−1] + I[t] + V(S[t−1])
    − S[t−1]·θ (reset subtract; zero: β·(1 − S[t−1])·U[t−1] + I[t] + V(S[t−1]); none: no reset term),
    S[t] = H(U[t] − θ). `feedback: all_to_all`: V(S) = W·S + b, a learned F×F matrix and bias
    (input (F,) only); `one_to_one`: V(S) = v ⊙ S, one learned weight per neuron, initialised to
    `feedback_init`. The gradient flows through V(S[t−1]) (backpropagation through time).

    **Time.** As `lif`: needs a `spike_encode` before it.

    **Shapes.** all_to_all: (F,) → (F,), F² + F feedback parameters; one_to_one: any shape → the same
    shape, one parameter per element. Plus β as for `lif`.

    **FLOPs** per step: the `lif` count, + 2·F² + 2·F (all_to_all: matrix-vector, bias, add) or + 2 per
    neuron (one_to_one). Times T. Backward: 2 × forward.

    **Equivalents.** snnTorch `snn.RLeaky(beta, linear_features=F)` (all_to_all) or
    `snn.RLeaky(beta, all_to_all=False, V=v)` (one_to_one), equal traces for reset subtract and none
    (snnTorch's RLeaky with reset zero also zeroes the step's new input; this layer zeroes only the old
    membrane, as snnTorch's Leaky does).
    """

    example = "- {type: rlif, beta: 0.9, feedback: all_to_all}"
    example_inputs = [(16,)]
    example_steps = 4

    feedback: Literal["all_to_all", "one_to_one"] = Field(
        default="all_to_all", description="Feedback of the previous step's spikes: a learned F×F matrix + bias "
        "(inputs of shape (F,)) or one learned weight per neuron.")
    feedback_init: float = Field(default=1.0, description="Initial one_to_one feedback weight (all_to_all starts "
                                 "like a dense layer).")
    learn_feedback: bool = Field(default=True, description="Learn the feedback weights.")

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (s,) = in_shapes
        if self.feedback == "all_to_all" and len(s) != 1:
            raise ShapeError(f"feedback all_to_all needs one feature axis (F,), got {s}",
                             hint="add - {type: flatten} before it, or use feedback: one_to_one")
        return tuple(s)

    def build(self, in_shapes: list[Shape], steps: int = 1) -> "nn.Module":
        from .spiking_nn import LIFNeurons

        return LIFNeurons(tuple(in_shapes[0]), steps, feedback=self.feedback, feedback_init=self.feedback_init,
                          learn_feedback=self.learn_feedback, **self._options())

    def step_flops(self, shape: Shape) -> int:
        n = numel(shape)
        per = 6 if self.reset != "none" else 4  # spikes are always made: they feed back
        fb = 2 * shape[-1] * shape[-1] + 2 * shape[-1] if self.feedback == "all_to_all" else 2 * n
        return per * n + fb


@register("spike_readout", family="spiking")
class SpikeReadout(SpikingLayer):
    """Spike readout: reduce the T time steps to one value per sample (rate, count or membrane).

    **Formula.** y = (1/T)·Σ_t x[t] (`mean`), Σ_t x[t] (`sum`), max_t x[t] (`max`) or x[T−1] (`last`).
    After a spiking `lif`, `mean` is each neuron's firing rate and `sum` its spike count; after a
    `lif` with `output: membrane` (and `reset: none`), `max` or `mean` is the membrane-potential readout
    that snnTorch and Norse tutorials train with cross-entropy.

    **Time.** Ends the spiking part: (T·B, *shape) → (B, *shape); the layers after it run once per sample.

    **Shapes.** any shape → the same shape. No parameters.

    **FLOPs** per sample, n = input elements: mean T·n (T−1 additions and a division per element),
    sum and max (T−1)·n, last 0. Backward: T·n (mean, sum, max), 0 (last).

    **Equivalents.** snnTorch `spk_rec.mean(0)` / `spk_rec.sum(0)` / `mem_rec.max(0)`; SpikingJelly
    `out_fr = out.mean(0)`; Norse's `max`/`last` decoders over a leaky integrator.
    """

    time_aware = True
    example = "- {type: spike_readout, reduce: mean}"
    example_inputs = [(10,)]
    example_steps = 4

    reduce: Literal["mean", "sum", "max", "last"] = Field(
        default="mean", description="How the T steps become one value: mean (firing rate), sum (spike count), "
        "max or last (membrane readouts).")

    def out_steps(self, steps: int) -> int:
        _needs_steps(steps, self.type)
        return 1

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        return tuple(in_shapes[0])

    def build(self, in_shapes: list[Shape], steps: int = 1) -> "nn.Module":
        from .spiking_nn import SpikeReadout as Module

        return Module(steps, self.reduce)

    def flops(self, in_shapes: list[Shape], out_shape: Shape, steps: int = 1) -> int:
        n = numel(in_shapes[0])
        return {"mean": steps * n, "sum": (steps - 1) * n, "max": (steps - 1) * n, "last": 0}[self.reduce]

    def backward_flops(self, in_shapes: list[Shape], out_shape: Shape, steps: int = 1) -> int:
        return 0 if self.reduce == "last" else steps * numel(in_shapes[0])
