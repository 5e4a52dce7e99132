"""A variational quantum circuit simulated exactly on a state vector (PennyLane's ``TorchLayer`` hybrid).

Each sample's n-qubit state is a vector of 2ⁿ complex amplitudes, indexed by the basis state
|q₀ q₁ … q_{n−1}⟩ with qubit 0 the most significant bit (PennyLane's wire order). Gates are torch ops, so
gradients flow through the simulation by autograd; the cost is O(L·n·2ⁿ) per sample, exponential in n.
"""
from __future__ import annotations

import math
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PositiveInt

from ..errors import ShapeError
from ..text import human_bytes
from .common import numel
from .registry import LayerSpec, Shape, register

if TYPE_CHECKING:
    import torch

COMPLEX_BYTES = 8  # complex64 (two float32)
INV_SQRT2 = 1 / math.sqrt(2)


def cnot_pairs(n: int, layer: int, entangler: str) -> list[tuple[int, int]]:
    """(control, target) of each CNOT of one layer, in order, as PennyLane's templates apply them."""
    if n == 1:
        return []
    if entangler == "ring":  # BasicEntanglerLayers: one CNOT for 2 qubits, a closed ring from 3
        return [(0, 1)] if n == 2 else [(i, (i + 1) % n) for i in range(n)]
    r = layer % (n - 1) + 1  # StronglyEntanglingLayers' default range for this layer
    return [(i, (i + r) % n) for i in range(n)]


def encoding_flops(n: int, width: int, encoding: str, rotation: str) -> int:
    """Per sample: the angle encoding's half-angles, cosines, sines and signs (X 4n, Y 3n, Z 6n) plus the
    Kronecker product of the n one-qubit states (2^{k+1} complex multiplies for k = 1…n−1, 6 FLOPs each);
    amplitude: ‖x‖ (square, sum, sqrt, clamp: 2F + 1) and the division (F)."""
    if encoding == "amplitude":
        return 3 * width + 1
    return {"X": 4, "Y": 3, "Z": 6}[rotation] * n + 6 * (2 ** (n + 1) - 4)


def circuit_flops(n: int, depth: int, width: int, encoding: str, rotation: str, measure: str) -> dict[str, int]:
    """Per-sample FLOPs of ``QuantumCircuitModule.forward`` by part (complex multiply-add = 8 real FLOPs)."""
    dim = 2 ** n
    return {
        "encoding": encoding_flops(n, width, encoding, rotation),
        # each one-qubit gate: a 2×2 complex matrix on every amplitude pair: 2 complex MACs per amplitude
        "gates": depth * n * 16 * dim,
        "cnots": 0,  # a permutation of the amplitudes
        "probabilities": 3 * dim,  # re² + im²
        "expectations": 2 * dim * n if measure == "pauli_z" else 0,  # probs (2ⁿ) · signs (2ⁿ × n)
    }


def _upper(v: Any) -> Any:
    return v.upper() if isinstance(v, str) else v


@register("quantum_circuit", family="quantum")
class QuantumCircuit(LayerSpec):
    """Variational quantum circuit, simulated exactly: encode, L trainable layers, measure ⟨Z⟩ per qubit.

    **Formula.** Per sample, on n qubits starting in |0…0⟩:
    1. *Encoding.* `angle`: one rotation per qubit by its input feature, R_X(x_i) (default), R_Y(x_i), or
       for `Z` a Hadamard then R_Z(x_i) (R_Z alone would only change the phase of |0…0⟩ and ignore x);
       as PennyLane's `AngleEmbedding`. `amplitude`: the state is x/‖x‖ padded with zeros to 2ⁿ
       amplitudes (`AmplitudeEmbedding(normalize=True, pad_with=0)`; an all-zero x gives the zero vector).
    2. *Layers* l = 1…L. `strongly_entangling` (PennyLane's `StronglyEntanglingLayers`):
       Rot(φ, θ, ω) = R_Z(ω)·R_Y(θ)·R_Z(φ) on every qubit, then CNOT(i, (i + r) mod n) for i = 0…n−1 with
       range r = (l−1 mod (n−1)) + 1. `ring` (`BasicEntanglerLayers`): R_X(w) on every qubit, then a
       ring of CNOT(i, i+1 mod n) (one CNOT for 2 qubits, none for 1). Trainable angles start uniform in
       [0, 2π), as `TorchLayer` initialises them.
    3. *Measurement.* `pauli_z`: ⟨Z_i⟩ = Σ_s |ψ_s|²·(1 − 2·bit_i(s)) for each qubit i, in [−1, 1];
       `probs`: the 2ⁿ probabilities |ψ_s|².

    Simulation: a complex state (B, 2ⁿ) (complex64; complex128 when the module is float64). Angle
    encoding builds the product state directly by Kronecker products; a one-qubit gate U on qubit q is
    the matmul U·ψ with the state viewed as (B, 2^q, 2, 2^{n−q−1}) (U broadcast over the first two
    axes); each layer's CNOTs are one precomputed permutation of the amplitudes. Gradients come from autograd through these ops.
    Memory: one state is 2ⁿ·8 bytes per sample and a training step keeps about L·n + 2 of them; a
    circuit whose training memory for a single sample exceeds this machine's memory is refused when the
    spec is validated, with the amount it would need.

    **Shapes.** angle: input (…, n) (put a `{type: dense, units: n}` before it for other widths);
    amplitude: input (…, F) with F ≤ 2ⁿ. Output (…, n) for `pauli_z`, (…, 2ⁿ) for `probs`.
    Parameters: L·n·3 (strongly_entangling) or L·n (ring).

    **FLOPs** (per sample, per leading position; complex multiply-add = 8 real FLOPs, complex multiply = 6):
    gates 16·L·n·2ⁿ (each of the L·n one-qubit gates: two complex multiply-adds per amplitude);
    CNOTs 0 (a permutation); probabilities 3·2ⁿ; ⟨Z⟩ 2·n·2ⁿ (a matmul of the probabilities with the
    2ⁿ×n sign matrix); angle encoding (X: 4n, Y: 3n, Z: 6n) + 6·(2^{n+1} − 4) for the Kronecker
    products; amplitude encoding 3F + 1. Building the gate matrices from the weights is done once per
    batch and not counted.

    **Equivalents.** PennyLane `qml.qnn.TorchLayer` of a QNode on `default.qubit` with
    `AngleEmbedding(x, wires, rotation)` (or `AmplitudeEmbedding(x, wires, normalize=True, pad_with=0)`),
    `StronglyEntanglingLayers(w, wires)` / `BasicEntanglerLayers(w, wires)` and
    `[qml.expval(qml.PauliZ(i)) for i in wires]` (or `qml.probs(wires)`); TensorFlow Quantum `PQC`.
    """

    example = "- {type: quantum_circuit, qubits: 4, layers: 2}"
    example_inputs = [(4,)]

    qubits: PositiveInt = Field(description="Number of qubits n; the state has 2ⁿ amplitudes per sample.")
    layers: PositiveInt = Field(default=2, description="Number of trainable layers L (rotations then CNOTs).")
    encoding: Literal["angle", "amplitude"] = Field(
        default="angle", description="angle: one rotation per qubit by its feature; amplitude: x/‖x‖ as the state.")
    rotation: Annotated[Literal["X", "Y", "Z"], BeforeValidator(_upper)] = Field(
        default="X", description="Axis of the angle encoding's rotations (Z: a Hadamard first).")
    entangler: Literal["strongly_entangling", "ring"] = Field(
        default="strongly_entangling", description="Trainable layers: PennyLane's StronglyEntanglingLayers or BasicEntanglerLayers (ring).")
    measure: Literal["pauli_z", "probs"] = Field(
        default="pauli_z", description="pauli_z: ⟨Z⟩ of each qubit (n outputs); probs: the 2ⁿ basis-state probabilities.")

    def kept_states(self) -> int:
        """State vectors a training step keeps per sample (the input of every gate, the final state, its
        probabilities): a lower bound on the simulation's memory."""
        return self.layers * self.qubits + 2

    def output_shape(self, in_shapes: list[Shape]) -> Shape:
        (s,) = in_shapes
        n = self.qubits
        if len(s) < 1:
            raise ShapeError(f"needs an input with at least one axis, got {s}")
        if self.encoding == "angle" and s[-1] != n:
            raise ShapeError(f"angle encoding needs one feature per qubit: input width {s[-1]}, qubits {n}",
                             hint=f"put - {{type: dense, units: {n}}} before it, or set qubits: {s[-1]}")
        if self.encoding == "amplitude" and s[-1] > 2 ** n:
            raise ShapeError(f"amplitude encoding holds at most 2^{n} = {2 ** n} features, got {s[-1]}",
                             hint=f"use qubits: {math.ceil(math.log2(s[-1]))} or more")
        return (*s[:-1], n if self.measure == "pauli_z" else 2 ** n)

    def check_memory(self, in_shapes: list[Shape], limit: int) -> None:
        state = 2 ** self.qubits * COMPLEX_BYTES
        need = state * self.kept_states()
        if need <= limit:
            return
        fits = max((q for q in range(1, self.qubits) if 2 ** q * COMPLEX_BYTES * (self.layers * q + 2) <= limit), default=0)
        raise ShapeError(
            f"simulating {self.qubits} qubits needs 2^{self.qubits} complex64 amplitudes = {human_bytes(state)} per state "
            f"vector and sample; a training step keeps about {self.kept_states()} of them (L·n + 2), "
            f"{human_bytes(need)} for a single sample (× the batch size for a batch), more than this machine's "
            f"{human_bytes(limit)} of memory",
            hint=f"at most {fits} qubits fit here at depth {self.layers}; every extra qubit doubles the memory")

    def build(self, in_shapes: list[Shape]):
        return _module_class()(self.qubits, self.layers, self.encoding, self.rotation, self.entangler, self.measure)

    def flops(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        s = in_shapes[0]
        parts = circuit_flops(self.qubits, self.layers, s[-1], self.encoding, self.rotation, self.measure)
        return numel(s[:-1]) * sum(parts.values())

    def extra_info(self, in_shapes: list[Shape], out_shape: Shape) -> dict[str, Any]:
        return {"state": f"2^{self.qubits} amplitudes, {human_bytes(2 ** self.qubits * COMPLEX_BYTES)}/sample",
                "kept_for_backward": f"~{self.kept_states()} states/sample"}


# --- the simulation --------------------------------------------------------------------------------

@cache
def _module_class() -> type:
    """The nn.Module (made on first use so importing the layer types does not import torch)."""
    import torch
    from torch import nn

    def complex_of(re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
        return torch.complex(re, im)

    class QuantumCircuitModule(nn.Module):
        """Batched state-vector simulation of the circuit described by the `quantum_circuit` layer type."""

        def __init__(self, qubits: int, depth: int, encoding: str, rotation: str, entangler: str, measure: str) -> None:
            super().__init__()
            self.qubits, self.depth = qubits, depth
            self.encoding, self.rotation, self.entangler, self.measure = encoding, rotation, entangler, measure
            shape = (depth, qubits, 3) if entangler == "strongly_entangling" else (depth, qubits)
            self.weights = nn.Parameter(torch.empty(shape))
            nn.init.uniform_(self.weights, 0.0, 2 * math.pi)
            # Not saved with the weights: they follow from the layer's parameters.
            basis = torch.arange(2 ** qubits)
            perms = [self._cnot_index(basis, cnot_pairs(qubits, layer, entangler)) for layer in range(depth)]
            self.register_buffer("perms", torch.stack(perms), persistent=False)  # (L, 2ⁿ)
            bits = torch.stack([(basis >> (qubits - 1 - i)) & 1 for i in range(qubits)], dim=1)  # (2ⁿ, n)
            self.register_buffer("z_signs", (1 - 2 * bits).to(torch.get_default_dtype()), persistent=False)

        def _cnot_index(self, basis: torch.Tensor, pairs: list[tuple[int, int]]) -> torch.Tensor:
            """g with ψ_after[s] = ψ_before[g(s)] for the CNOTs applied in order (each is its own inverse)."""
            n, idx = self.qubits, basis.clone()
            for c, t in reversed(pairs):
                idx = idx ^ (((idx >> (n - 1 - c)) & 1) << (n - 1 - t))
            return idx

        # --- gates ---------------------------------------------------------------------------
        def gate_matrices(self, cdtype: torch.dtype) -> torch.Tensor:
            """(L, n, 2, 2) complex: R_X(w) (ring) or Rot(φ, θ, ω) = R_Z(ω)R_Y(θ)R_Z(φ) per layer and qubit."""
            w = self.weights
            if self.entangler == "ring":
                c, s = torch.cos(w / 2), torch.sin(w / 2)
                zero = torch.zeros_like(c)
                re = torch.stack([torch.stack([c, zero], -1), torch.stack([zero, c], -1)], -2)
                im = torch.stack([torch.stack([zero, -s], -1), torch.stack([-s, zero], -1)], -2)
                return complex_of(re, im).to(cdtype)
            phi, theta, omega = w[..., 0], w[..., 1], w[..., 2]
            c, s = torch.cos(theta / 2), torch.sin(theta / 2)
            a, b = (phi + omega) / 2, (phi - omega) / 2
            # [[e^{-ia}c, -e^{ib}s], [e^{-ib}s, e^{ia}c]]
            re = torch.stack([torch.stack([torch.cos(a) * c, -torch.cos(b) * s], -1),
                              torch.stack([torch.cos(b) * s, torch.cos(a) * c], -1)], -2)
            im = torch.stack([torch.stack([-torch.sin(a) * c, -torch.sin(b) * s], -1),
                              torch.stack([-torch.sin(b) * s, torch.sin(a) * c], -1)], -2)
            return complex_of(re, im).to(cdtype)

        def encode(self, x: torch.Tensor, cdtype: torch.dtype) -> torch.Tensor:
            """(B, F) real → (B, 2ⁿ) complex initial state."""
            b, n = x.shape[0], self.qubits
            if self.encoding == "amplitude":
                norm = x.square().sum(-1, keepdim=True).sqrt().clamp_min(torch.finfo(x.dtype).tiny)
                amp = torch.nn.functional.pad(x / norm, (0, 2 ** n - x.shape[-1]))  # (B, 2ⁿ)
                return complex_of(amp, torch.zeros_like(amp)).to(cdtype)
            h = x * 0.5  # (B, n) half-angles
            c, s = torch.cos(h), torch.sin(h)
            zero = torch.zeros_like(c)
            if self.rotation == "X":  # R_X(x)|0⟩ = cos(x/2)|0⟩ − i·sin(x/2)|1⟩
                v = complex_of(torch.stack([c, zero], -1), torch.stack([zero, -s], -1))
            elif self.rotation == "Y":  # R_Y(x)|0⟩ = cos(x/2)|0⟩ + sin(x/2)|1⟩
                v = complex_of(torch.stack([c, s], -1), torch.stack([zero, zero], -1))
            else:  # R_Z(x)·H|0⟩ = (e^{−ix/2}|0⟩ + e^{ix/2}|1⟩)/√2
                c, s = c * INV_SQRT2, s * INV_SQRT2
                v = complex_of(torch.stack([c, c], -1), torch.stack([-s, s], -1))
            v = v.to(cdtype)  # (B, n, 2): each qubit's state
            psi = v[:, 0]  # (B, 2)
            for i in range(1, n):  # |ψ⟩ ⊗ |v_i⟩: qubit i becomes the least significant so far
                psi = (psi[:, :, None] * v[:, i, None, :]).reshape(b, -1)  # (B, 2^{i+1})
            return psi

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            lead, n = x.shape[:-1], self.qubits
            with torch.autocast(device_type=x.device.type, enabled=False):
                real = self.weights.dtype
                cdtype = torch.complex128 if real == torch.float64 else torch.complex64
                psi = self.encode(x.reshape(-1, x.shape[-1]).to(real), cdtype)  # (B, 2ⁿ)
                b = psi.shape[0]
                gates = self.gate_matrices(cdtype)  # (L, n, 2, 2)
                for layer in range(self.depth):
                    for q in range(n):
                        view = psi.reshape(b, 2 ** q, 2, 2 ** (n - q - 1))  # (B, left, qubit q, right)
                        psi = (gates[layer, q] @ view).reshape(b, -1)  # U (2, 2) on the qubit axis of every block
                    if n > 1:
                        psi = psi.index_select(1, self.perms[layer])  # the layer's CNOTs
                probs = psi.real.square() + psi.imag.square()  # (B, 2ⁿ)
                out = probs @ self.z_signs.to(real) if self.measure == "pauli_z" else probs  # (B, n) | (B, 2ⁿ)
            return out.reshape(*lead, out.shape[-1])

        def extra_repr(self) -> str:
            return (f"qubits={self.qubits}, layers={self.depth}, encoding={self.encoding}, rotation={self.rotation}, "
                    f"entangler={self.entangler}, measure={self.measure}")

    return QuantumCircuitModule
