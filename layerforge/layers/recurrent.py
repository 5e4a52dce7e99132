"""Recurrent layers: simple RNN, LSTM, GRU (torch's cells, batch-first, cuDNN on GPU).

All three share one shape rule and one wrapper module: torch's ``nn.RNN``/``nn.LSTM``/``nn.GRU``
return ``(output, state)``; the wrapper returns the whole output sequence or the last step's output the
way Keras does (for a bidirectional layer: the forward direction's last step joined with the backward
direction's output at t=0, as ``Bidirectional(return_sequences=False)``), and with ``return_state`` the
final states after it as extra outputs (``LayerSpec.extra_outputs``); inputs after the sequence are the
initial state.
"""
from __future__ import annotations

from functools import cache
from typing import Any, ClassVar, Literal

from pydantic import Field, PositiveInt, model_validator

from ..errors import ShapeError
from .common import Count, sequence_hint
from .registry import Shape, register
from .weights import RecurrentOptions

_FAMILY = "recurrent"
Activation = Literal["tanh", "sigmoid", "hard_sigmoid", "relu", "linear", "softsign"]  # recurrent_loop.ACTIVATIONS


def activation_field() -> Any:
    return Field(default="tanh", description="The activation of the candidate (LSTM: g and the cell output "
                 "tanh(c_t); GRU: n); anything but tanh runs the step loop instead of the fused kernel (slower).")


def recurrent_activation_field() -> Any:
    return Field(default="sigmoid", description="The gates' activation σ; anything but sigmoid runs the step loop "
                 "(slower). hard_sigmoid = relu6(x + 3) / 6, as Keras 3.")


@cache
def _wrapper_class() -> type:
    """The nn.Module wrapper (made on first use so importing the layer types does not import torch)."""
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from .recurrent_loop import reverse_valid, run_loop, steps_at, valid_first

    class RecurrentOutput(nn.Module):
        """Runs a torch recurrent module and returns the sequence or the last step, and with
        ``return_state`` also each direction's final state: ``(y, h, c, h_backward, c_backward)``.

        Inputs after the sequence are the initial state, one (B, H) tensor per direction and part in the
        same order (num_layers 1). With a padding mask (bool (B, T), True = valid) the sequences are packed,
        so each one stops at its own last valid step and a bidirectional layer's backward pass starts there;
        padded steps of the output sequence are 0 (as Keras), and a sequence with no valid step keeps its
        initial state. Left-padded sequences run with their valid steps moved to the front, and their
        outputs are put back in place."""

        def __init__(self, rnn: nn.RNNBase, return_sequences: bool, go_backwards: bool = False,
                     merge_mode: str = "concat", loop: dict[str, Any] | None = None,
                     return_state: bool = False) -> None:
            super().__init__()
            self.rnn = rnn
            self.return_sequences = return_sequences
            self.go_backwards = go_backwards
            self.merge_mode = merge_mode
            self.loop = loop  # options the fused kernel lacks: run recurrent_loop.run_loop instead
            self.return_state = return_state
            self.lstm = isinstance(rnn, nn.LSTM)

        def forward(self, x: torch.Tensor, *state: torch.Tensor,
                    masks: list[torch.Tensor | None] | None = None) -> torch.Tensor | tuple[torch.Tensor, ...]:
            mask = masks[0] if masks else None  # (B, T) bool or None
            order = None if mask is None else valid_first(mask)
            if order is not None:  # left padding: valid steps first, as packing needs
                x, mask = steps_at(x, order), steps_at(mask, order)
            dirs = 2 if self.rnn.bidirectional else 1
            h0, c0 = self._initial(state, dirs)  # (dirs, B, H) each, or None
            lengths = None if mask is None else mask.sum(dim=1)  # (B,)
            if self.go_backwards:
                x = x.flip(1) if lengths is None else reverse_valid(x, lengths)  # (B, T, F), last step first
            if self.loop is not None:
                out, h_n, c_n = run_loop(self.rnn, x=x, lengths=lengths, training=self.training, h0=h0, c0=c0,
                                         **self.loop)
            else:
                hx = None if h0 is None else (h0, c0) if self.lstm else h0
                if lengths is not None:
                    x = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
                out, st = self.rnn(x, hx)  # (B, T, H·dirs); states (layers·dirs, B, H)
                if lengths is not None:
                    out, _ = pad_packed_sequence(out, batch_first=True, total_length=mask.shape[1])
                h_n, c_n = st if self.lstm else (st, None)
            if mask is not None:  # a sequence without a valid step keeps its initial state (packing ran one step)
                h_n, c_n = (_keep_initial(s, s0, mask) for s, s0 in ((h_n, h0), (c_n, c0)))
            # each direction's final state: forward after its last valid step, backward after t = 0
            y = out if self.return_sequences else torch.cat(list(h_n[-dirs:]), dim=-1)  # (B, H·dirs)
            if mask is not None:
                y = y * (mask.any(dim=1) if y.dim() == 2 else mask).unsqueeze(-1).to(y.dtype)  # empty rows → 0
            if order is not None and self.return_sequences:
                y = steps_at(y, order, inverse=True)  # each output back at its input's step
            if self.rnn.bidirectional:
                y = merge_directions(y, self.rnn.hidden_size, self.merge_mode)
            if not self.return_state:
                return y
            parts = [h_n[-dirs:], c_n[-dirs:]] if self.lstm else [h_n[-dirs:]]
            return (y, *(p[d] for d in range(dirs) for p in parts))  # h, c, h_backward, c_backward

        def _initial(self, state: tuple[torch.Tensor, ...], dirs: int) -> tuple[torch.Tensor | None, ...]:
            """The initial inputs [h, c, h_backward, c_backward] (each (B, H)) as torch's h0, c0 (dirs, B, H)."""
            if not state:
                return None, None
            per = 2 if self.lstm else 1
            h0 = torch.stack([state[d * per] for d in range(dirs)])
            c0 = torch.stack([state[d * per + 1] for d in range(dirs)]) if self.lstm else None
            return h0, c0

        def extra_repr(self) -> str:
            extra = ", go_backwards=True" if self.go_backwards else ""
            extra += f", step loop {self.loop}" if self.loop else ""
            extra += f", merge_mode={self.merge_mode}" if self.rnn.bidirectional and self.merge_mode != "concat" else ""
            extra += ", return_state=True" if self.return_state else ""
            return f"return_sequences={self.return_sequences}{extra}"

    def _keep_initial(s: torch.Tensor | None, s0: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor | None:
        """The final states s (layers·dirs, B, H) with rows of empty sequences reset to s0 (or 0)."""
        if s is None:
            return None
        some = mask.any(dim=1)[None, :, None]  # (1, B, 1)
        return torch.where(some, s, s0 if s0 is not None and s0.shape[0] == s.shape[0] else torch.zeros_like(s))

    return RecurrentOutput


def merge_directions(y: "torch.Tensor", h: int, mode: str) -> "torch.Tensor":
    """Join the forward and backward halves [..., :h] and [..., h:] of a bidirectional output."""
    if mode == "concat":
        return y
    fwd, bwd = y[..., :h], y[..., h:]
    if mode == "sum":
        return fwd + bwd
    if mode == "mul":
        return fwd * bwd
    return (fwd + bwd) * 0.5  # ave


class _Recurrent(RecurrentOptions):
    """Fields, shape rule, build and FLOPs shared by the recurrent types (not registered itself)."""

    # class facts set by each type: torch module name, gates G, elementwise FLOPs per unit per step
    torch_module: ClassVar[str] = ""
    n_gates: ClassVar[int] = 1
    cell_flops_per_unit: ClassVar[int] = 0
    state_parts: ClassVar[tuple[str, ...]] = ("h",)  # the state of one direction (LSTM: h, c)
    max_inputs = 3  # the sequence, then the initial state: one input per part and direction

    units: PositiveInt = Field(description="Hidden size H of each direction.")
    num_layers: Count = Field(
        default=1, description="Stacked recurrent layers (at most 256); layer l+1 reads layer l's output sequence."
    )
    bidirectional: bool = Field(
        default=False, description="Also run a second set of weights backwards in time and concatenate (H·2)."
    )
    dropout: float = Field(
        default=0.0, ge=0.0, lt=1.0,
        description="Dropout on the outputs of every stacked layer but the last (as torch); needs num_layers ≥ 2.",
    )
    return_sequences: bool = Field(
        default=False,
        description="true: every step's output (T, H·dirs); false: the last step's output (H·dirs), as Keras.",
    )
    go_backwards: bool = Field(
        default=False, description="Read the sequence from its last (valid) step to its first, as Keras; the output "
                                   "sequence stays in that reversed order.",
    )
    merge_mode: Literal["concat", "sum", "mul", "ave"] = Field(
        default="concat", description="How a bidirectional layer joins its two directions: concat (H·2), or "
                                      "sum, mul, ave elementwise (H), as Keras' Bidirectional.",
    )
    use_bias: bool = Field(default=True, description="Learn the bias vectors b_ih and b_hh (false: none).")
    recurrent_dropout: float = Field(
        default=0.0, ge=0.0, lt=1.0,
        description="While training, drop units of h_{t−1} where it enters the recurrence, one mask for all steps "
                    "(as Keras); > 0 runs the step loop instead of the fused kernel (slower).",
    )

    return_state: bool = Field(
        default=False, description="Also return the final state as extra outputs read as '<name>:h' (LSTM also "
                                   "'<name>:c'; bidirectional also ':h_backward', ':c_backward'), as Keras' "
                                   "return_state; stacked layers: the last layer's.",
    )

    def state_names(self) -> list[str]:
        """The state's parts in Keras' order: h (, c) per direction, the backward ones suffixed _backward.
        They name the extra outputs (return_state) and the initial-state inputs after the sequence."""
        dirs = ("", "_backward") if self.bidirectional else ("",)
        return [p + d for d in dirs for p in self.state_parts]

    def extra_outputs(self, in_shapes: list[Shape]) -> dict[str, Shape]:
        return {k: (self.units,) for k in self.state_names()} if self.return_state else {}

    def loop_options(self) -> dict[str, Any] | None:
        """The options for recurrent_loop.run_loop, or None when torch's fused kernel computes this layer."""
        opts = {"kind": self.type, "activation": getattr(self, "activation", "tanh"),
                "recurrent_activation": getattr(self, "recurrent_activation", "sigmoid"),
                "reset_after": getattr(self, "reset_after", True), "recurrent_dropout": self.recurrent_dropout}
        fused_act = ("tanh", "relu") if self.type == "simple_rnn" else ("tanh",)
        fused = (opts["activation"] in fused_act and opts["recurrent_activation"] == "sigmoid" and opts["reset_after"]
                 and self.recurrent_dropout == 0)
        return None if fused else opts

    @model_validator(mode="after")
    def _options_fit(self) -> "_Recurrent":
        if self.merge_mode != "concat" and not self.bidirectional:
            raise ValueError(f"merge_mode '{self.merge_mode}' joins the two directions of a bidirectional layer; "
                             "set bidirectional: true, or remove merge_mode")
        if self.go_backwards and self.bidirectional:
            raise ValueError("go_backwards with bidirectional only swaps the two directions; remove go_backwards")
        return self

    @model_validator(mode="after")
    def _dropout_needs_stacking(self) -> "_Recurrent":
        if self.dropout > 0 and self.num_layers < 2:
            raise ValueError(
                f"dropout={self.dropout} acts only between stacked layers, and num_layers is 1, so it would do nothing; "
                "set num_layers ≥ 2, or put a dropout layer before or after this one"
            )
        return self

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        s, *initial = in_shapes
        if len(s) != 2:
            raise ShapeError(f"{self.type} needs a sequence (T, F), got {tuple(s)}", hint=sequence_hint(s))
        if initial:
            self._check_initial_state([tuple(x) for x in initial])
        return (s[0], self.width) if self.return_sequences else (self.width,)

    def _check_initial_state(self, shapes: list[Shape]) -> None:
        """The inputs after the sequence: one (units,) state per part and direction, on one stacked layer."""
        want = self.state_names()
        refs = ", ".join(f"enc:{k}" for k in want)
        if len(shapes) != len(want):
            raise ShapeError(f"the inputs after the sequence are the initial state, {len(want)} for this {self.type} "
                             f"({', '.join(want)}), got {len(shapes)}",
                             hint=f"inputs: [<sequence>, {refs}] with enc a {self.type} with return_state: true"
                                  + (", bidirectional as this one" if self.bidirectional else ""))
        if self.num_layers > 1:
            raise ShapeError(f"an initial state needs num_layers: 1, got {self.num_layers} (torch would need one "
                             "state per stacked layer, Keras has no stacked layer)",
                             hint="write the stacked layers as separate layers; the first takes the initial state")
        bad = [f"{k} {s}" for k, s in zip(want, shapes) if s != (self.units,)]
        if bad:
            raise ShapeError(f"each initial state must have shape ({self.units},), the units; got {', '.join(bad)}",
                             hint="pass the states of a layer with the same units (or map them with a dense layer)")

    @property
    def width(self) -> int:
        """Output features per step: H, or 2·H for a bidirectional layer that concatenates."""
        return self.units * (2 if self.bidirectional and self.merge_mode == "concat" else 1)

    def mask_mode(self, in_shapes: list[Shape]) -> str:
        return "use" if self.return_sequences else "consume"

    def _torch_kwargs(self) -> dict[str, Any]:
        return {}

    def build(self, in_shapes: list[Shape]):
        from torch import nn

        rnn = getattr(nn, self.torch_module)(
            in_shapes[0][-1], self.units, num_layers=self.num_layers, bidirectional=self.bidirectional,
            dropout=self.dropout, batch_first=True, bias=self.use_bias, **self._torch_kwargs(),
        )
        self._init(rnn)
        return _wrapper_class()(rnn, self.return_sequences, self.go_backwards, self.merge_mode, self.loop_options(),
                                self.return_state)

    def _init(self, rnn) -> None:
        """Initialisation beyond torch's defaults (LSTM's unit_forget_bias)."""

    def step_flops(self, features: int) -> int:
        """FLOPs of one time step of one direction of one stacked layer reading `features` inputs."""
        g, h = self.n_gates, self.units
        matmuls = 2 * features * g * h + 2 * h * g * h
        biases = 2 * g * h if self.use_bias else 0  # b_ih and b_hh
        combine = g * h  # (W_ih x + b_ih) + (W_hh h + b_hh), one add per gate unit
        gate_activations = g * h  # one sigmoid/tanh (or relu) per gate unit
        return matmuls + biases + combine + gate_activations + self.cell_flops_per_unit * h

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        t, f = in_shapes[0]
        dirs = 2 if self.bidirectional else 1
        total = 0
        for layer in range(self.num_layers):
            features = f if layer == 0 else self.units * dirs
            total += dirs * t * self.step_flops(features)
        if self.bidirectional and self.merge_mode != "concat":
            positions = t if self.return_sequences else 1
            total += positions * self.units * (2 if self.merge_mode == "ave" else 1)  # + or ⊙ (ave: then × ½)
        return total


@register("simple_rnn", family=_FAMILY)
class SimpleRNN(_Recurrent):
    """Elman recurrent layer: h_t = f(W_ih·x_t + b_ih + W_hh·h_{t−1} + b_hh), f = tanh or relu.

    **Formula.** For each time step t = 0 … T−1 (h_{−1} = 0), with x_t ∈ ℝ^F, h_t ∈ ℝ^H:
    h_t = f(W_ih·x_t + b_ih + W_hh·h_{t−1} + b_hh). The output at step t is h_t. Stacked layers
    (`num_layers`) read the previous layer's h sequence; `bidirectional` adds a second set of weights run
    from t = T−1 down to 0, its h concatenated after the forward one.

    **Shapes.** input (T, F) → (T, H·dirs) with `return_sequences: true`, else (H·dirs): the last step's
    h; bidirectional: [forward h_{T−1}, backward h at t=0] (each direction's final state), as Keras'
    `Bidirectional(SimpleRNN(H))`. dirs = 2 if bidirectional else 1.
    State (docs/sequences.md): `return_state` adds the extra output `NAME:h` (H,) (bidirectional also
    `NAME:h_backward`); inputs after the sequence are the initial state in the same order.
    Parameters per direction and layer: H·F_l + H·H + 2·H (two bias vectors, as torch), F_0 = F,
    F_l = H·dirs above.

    **FLOPs** (per sample) = Σ_layers dirs · T · step, with one step
    = 2·F_l·H (W_ih·x) + 2·H·H (W_hh·h) + 2·H (both biases) + H (adding the two halves) + H (f) =
    2·F_l·H + 2·H² + 4·H. Every step is counted, also the first one (h_{−1} = 0, torch still multiplies).
    Options (docs/sequences.md): `use_bias: false` removes the 2·G·H bias adds per step; a bidirectional
    `merge_mode` sum/mul adds H per output step (ave 2·H); the activations, `go_backwards`, `reset_after`
    and `recurrent_dropout` (training only) leave the count as it is, as do `return_state` and an initial
    state; masked batches count the padded T.

    **Equivalents.** PyTorch `nn.RNN(F, H, num_layers, nonlinearity=f, batch_first=True,
    bidirectional=…, dropout=…)` (output[:, -1] for the last step); Keras `layers.SimpleRNN(H, activation=f,
    return_sequences=…)`, wrapped in `layers.Bidirectional` for two directions (Keras has one bias vector:
    H fewer parameters per direction).
    """

    example = "- {type: simple_rnn, units: 64}"
    example_inputs = [(20, 16)]
    torch_module = "RNN"
    n_gates = 1
    cell_flops_per_unit = 0

    activation: Activation = Field(
        default="tanh", description="Nonlinearity f of the recurrence; tanh and relu run torch's fused kernel, the "
                                    "others the step loop (slower).",
    )

    def _torch_kwargs(self) -> dict[str, Any]:
        return {"nonlinearity": self.activation if self.activation in ("tanh", "relu") else "tanh"}


@register("lstm", family=_FAMILY)
class LSTM(_Recurrent):
    """Long short-term memory: input, forget, cell and output gates around a cell state c_t.

    **Formula.** torch's formulation, for each step t (h_{−1} = c_{−1} = 0), σ = sigmoid, ⊙ elementwise:
    i = σ(W_ii·x_t + b_ii + W_hi·h_{t−1} + b_hi), f = σ(W_if·x_t + b_if + W_hf·h_{t−1} + b_hf),
    g = tanh(W_ig·x_t + b_ig + W_hg·h_{t−1} + b_hg), o = σ(W_io·x_t + b_io + W_ho·h_{t−1} + b_ho),
    c_t = f ⊙ c_{t−1} + i ⊙ g, h_t = o ⊙ tanh(c_t). The output at step t is h_t.

    **Shapes.** input (T, F) → (T, H·dirs) with `return_sequences: true`, else (H·dirs): the last step's
    h; bidirectional: [forward h_{T−1}, backward h at t=0], as Keras' `Bidirectional(LSTM(H))`.
    State (docs/sequences.md): `return_state` adds the extra outputs `NAME:h`, `NAME:c` (H,) each
    (bidirectional also `NAME:h_backward`, `NAME:c_backward`); inputs after the sequence are the initial
    state in the same order (Keras `initial_state=[h, c]`).
    Parameters per direction and layer: 4·H·(F_l + H) + 8·H (two bias vectors, as torch), e.g. 32 → 64:
    25,088. F_0 = F, F_l = H·dirs above.

    **FLOPs** (per sample) = Σ_layers dirs · T · step, with one step (G = 4 gates)
    = 2·F_l·4H + 2·H·4H (matmuls) + 2·4H (both biases) + 4H (adding the two halves) + 4H (3 σ + 1 tanh) +
    3H (f⊙c, i⊙g, their sum) + H (tanh c_t) + H (o⊙) = 8·F_l·H + 8·H² + 21·H. Every step is counted, also the first one.
    Options (docs/sequences.md): `use_bias: false` removes the 2·G·H bias adds per step; a bidirectional
    `merge_mode` sum/mul adds H per output step (ave 2·H); the activations, `go_backwards`, `reset_after`
    and `recurrent_dropout` (training only) leave the count as it is, as do `return_state` and an initial
    state; masked batches count the padded T.

    **Equivalents.** PyTorch `nn.LSTM(F, H, num_layers, batch_first=True, bidirectional=…, dropout=…)`
    (output[:, -1] for the last step); Keras `layers.LSTM(H, return_sequences=…)`, wrapped in
    `layers.Bidirectional` for two directions (Keras has one bias vector: 4·H fewer parameters per direction;
    its `dropout` acts on the inputs, not between stacked layers).
    """

    example = "- {type: lstm, units: 64, return_sequences: true}"
    example_inputs = [(20, 32)]
    torch_module = "LSTM"
    n_gates = 4
    state_parts = ("h", "c")
    max_inputs = 5
    cell_flops_per_unit = 5  # f⊙c, i⊙g, +, tanh(c), o⊙

    activation: Activation = activation_field()
    recurrent_activation: Activation = recurrent_activation_field()
    unit_forget_bias: bool = Field(
        default=False, description="Start with zero biases except 1 on the forget gate (in b_if; b_hf stays 0), "
                                   "Keras' default; false keeps torch's uniform initialisation.",
    )

    @model_validator(mode="after")
    def _forget_bias_needs_bias(self) -> "LSTM":
        if self.unit_forget_bias and not self.use_bias:
            raise ValueError("unit_forget_bias sets a bias, and use_bias is false; drop one of them")
        return self

    def _init(self, rnn) -> None:
        import torch

        if not self.unit_forget_bias:
            return
        h = self.units
        with torch.no_grad():
            for name, p in rnn.named_parameters():
                if name.startswith("bias_"):
                    p.zero_()
                    if name.startswith("bias_ih"):
                        p[h : 2 * h] = 1.0  # torch's gate order i, f, g, o

    def after_init(self, module) -> None:
        """With a bias_initializer too, Keras draws the bias and then sets the forget gate's part to 1."""
        import torch

        if not (self.unit_forget_bias and self.bias_initializer is not None):
            return
        h = self.units
        with torch.no_grad():
            for name, p in module.rnn.named_parameters():
                if name.startswith("bias_ih") and not p.is_meta:
                    p[h : 2 * h] = 1.0


@register("gru", family=_FAMILY)
class GRU(_Recurrent):
    """Gated recurrent unit: reset and update gates, no separate cell state (torch's variant).

    **Formula.** torch's formulation (reset applied after the hidden matmul, Keras `reset_after=True`),
    for each step t (h_{−1} = 0), σ = sigmoid, ⊙ elementwise:
    r = σ(W_ir·x_t + b_ir + W_hr·h_{t−1} + b_hr), z = σ(W_iz·x_t + b_iz + W_hz·h_{t−1} + b_hz),
    n = tanh(W_in·x_t + b_in + r ⊙ (W_hn·h_{t−1} + b_hn)), h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}.

    **Shapes.** input (T, F) → (T, H·dirs) with `return_sequences: true`, else (H·dirs): the last step's
    h; bidirectional: [forward h_{T−1}, backward h at t=0], as Keras' `Bidirectional(GRU(H))`.
    State (docs/sequences.md): `return_state` adds the extra output `NAME:h` (H,) (bidirectional also
    `NAME:h_backward`); inputs after the sequence are the initial state in the same order.
    Parameters per direction and layer: 3·H·(F_l + H) + 6·H (two bias vectors), e.g. 32 → 64: 18,816.
    F_0 = F, F_l = H·dirs above.

    **FLOPs** (per sample) = Σ_layers dirs · T · step, with one step (G = 3 gates)
    = 2·F_l·3H + 2·H·3H (matmuls) + 2·3H (both biases) + 3H (adding the halves of r, z, n) + 3H (2 σ + 1 tanh) +
    H (r ⊙ (W_hn·h + b_hn)) + 4H ((1 − z), ⊙ n, z ⊙ h, their sum) = 6·F_l·H + 6·H² + 17·H.
    Every step is counted, also the first one.
    Options (docs/sequences.md): `use_bias: false` removes the 2·G·H bias adds per step; a bidirectional
    `merge_mode` sum/mul adds H per output step (ave 2·H); the activations, `go_backwards`, `reset_after`
    and `recurrent_dropout` (training only) leave the count as it is, as do `return_state` and an initial
    state; masked batches count the padded T.

    **Equivalents.** PyTorch `nn.GRU(F, H, num_layers, batch_first=True, bidirectional=…, dropout=…)`
    (output[:, -1] for the last step); Keras `layers.GRU(H, reset_after=True, return_sequences=…)` (the
    Keras 2+/3 default, same two bias vectors and parameter count; gate order z, r, h vs torch's r, z, n),
    wrapped in `layers.Bidirectional` for two directions.
    """

    example = "- {type: gru, units: 64, bidirectional: true}"
    example_inputs = [(20, 32)]
    torch_module = "GRU"
    n_gates = 3
    cell_flops_per_unit = 5  # r⊙(…), 1−z, ⊙n, z⊙h, +

    activation: Activation = activation_field()
    recurrent_activation: Activation = recurrent_activation_field()
    reset_after: bool = Field(
        default=True, description="true: r ⊙ (W_hn·h + b_hn), torch's and Keras 3's default (fused kernel); false: "
                                  "W_hn·(r ⊙ h) + b_hn, the original GRU (Keras reset_after=False), step loop.",
    )
