"""quantum_circuit: expectation values and gradients against PennyLane's default.qubit and against a
plain numpy product of the full 2ⁿ×2ⁿ gate matrices, a normalised state, FLOPs against the operations
the forward really dispatches, and the located memory error."""
from __future__ import annotations

import math
from functools import reduce

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import layerforge as lf
from layerforge.errors import ShapeError, SpecError
from layerforge.layers.quantum import QuantumCircuit, circuit_flops, cnot_pairs


def circuit(**kw) -> QuantumCircuit:
    return QuantumCircuit(type="quantum_circuit", **kw)


def pennylane_reference(n, entangler, rotation="X", encoding="angle", measure="pauli_z"):
    qml = pytest.importorskip("pennylane", reason="PennyLane is a dev-only reference: pip install -e '.[dev]'")
    dev = qml.device("default.qubit", wires=n)

    @qml.qnode(dev, interface="torch", diff_method="backprop")
    def run(x, w):
        if encoding == "amplitude":
            qml.AmplitudeEmbedding(x, wires=range(n), normalize=True, pad_with=0.0)
        else:
            if rotation == "Z":
                for i in range(n):
                    qml.Hadamard(i)
            qml.AngleEmbedding(x, wires=range(n), rotation=rotation)
        if entangler == "ring":
            qml.BasicEntanglerLayers(w, wires=range(n), rotation=qml.RX)
        else:
            qml.StronglyEntanglingLayers(w, wires=range(n))
        if measure == "probs":
            return qml.probs(wires=range(n))
        return [qml.expval(qml.PauliZ(i)) for i in range(n)]

    def call(x, w):
        out = run(x, w)
        return torch.stack(list(out), -1) if isinstance(out, (list, tuple)) else out

    return call


def _compare(layer: QuantumCircuit, width: int, dtype: torch.dtype, tol: float) -> None:
    torch.manual_seed(layer.qubits)
    ref = pennylane_reference(layer.qubits, layer.entangler, layer.rotation, layer.encoding, layer.measure)
    m = layer.build([(width,)]).to(dtype)
    x = (torch.rand(5, width, dtype=torch.float64) * 2 * math.pi - math.pi).to(dtype).requires_grad_(True)
    y = m(x)
    x_ref = x.detach().double().requires_grad_(True)
    w_ref = m.weights.detach().double().requires_grad_(True)
    y_ref = ref(x_ref, w_ref)
    cotangent = torch.randn(y.shape, dtype=torch.float64)
    (y.double() * cotangent).sum().backward()
    (y_ref * cotangent).sum().backward()
    assert (y.double() - y_ref).abs().max() < tol
    assert (x.grad.double() - x_ref.grad).abs().max() < tol
    assert (m.weights.grad.double() - w_ref.grad).abs().max() < tol


@pytest.mark.parametrize("entangler", ["ring", "strongly_entangling"])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_expectations_and_gradients_equal_pennylane_default_qubit(n, entangler):
    """Random inputs and weights, 3 layers, the rotation axis cycling X/Y/Z with n; float64 to 1e-6 (the
    agreement is ~1e-15) and the float32 default to 1e-5."""
    layer = circuit(qubits=n, layers=3, entangler=entangler, rotation="XYZ"[n % 3])
    _compare(layer, n, torch.float64, 1e-6)
    _compare(layer, n, torch.float32, 1e-5)


@pytest.mark.parametrize("kw,width", [
    ({"qubits": 3, "encoding": "amplitude"}, 5),
    ({"qubits": 2, "encoding": "amplitude", "entangler": "ring"}, 4),
    ({"qubits": 4, "measure": "probs"}, 4),
    ({"qubits": 3, "measure": "probs", "encoding": "amplitude", "entangler": "ring"}, 8),
])
def test_amplitude_encoding_and_probabilities_equal_pennylane(kw, width):
    _compare(circuit(layers=2, **kw), width, torch.float64, 1e-6)


# --- an independent reference without PennyLane: the full unitary, gate by gate, in numpy ---------
_I = np.eye(2)
_X = np.array([[0, 1], [1, 0]])
_P0, _P1 = np.diag([1, 0]), np.diag([0, 1])


def _on(n, gates: dict[int, np.ndarray]) -> np.ndarray:
    """⊗ over qubits 0…n−1 (qubit 0 most significant) of the given one-qubit matrices (identity elsewhere)."""
    return reduce(np.kron, [gates.get(q, _I) for q in range(n)])


def _rx(t):
    return np.array([[np.cos(t / 2), -1j * np.sin(t / 2)], [-1j * np.sin(t / 2), np.cos(t / 2)]])


def _ry(t):
    return np.array([[np.cos(t / 2), -np.sin(t / 2)], [np.sin(t / 2), np.cos(t / 2)]])


def _rz(t):
    return np.diag([np.exp(-0.5j * t), np.exp(0.5j * t)])


def numpy_circuit(n, entangler, rotation, x, w) -> np.ndarray:
    """⟨Z_i⟩ from a dense 2ⁿ×2ⁿ unitary built from textbook gate matrices."""
    enc = {"X": _rx, "Y": _ry, "Z": lambda t: _rz(t) @ (np.array([[1, 1], [1, -1]]) / np.sqrt(2))}[rotation]
    psi = np.zeros(2 ** n, complex)
    psi[0] = 1
    psi = _on(n, {q: enc(x[q]) for q in range(n)}) @ psi
    for layer in range(w.shape[0]):
        if entangler == "ring":
            psi = _on(n, {q: _rx(w[layer, q]) for q in range(n)}) @ psi
        else:
            psi = _on(n, {q: _rz(w[layer, q, 2]) @ _ry(w[layer, q, 1]) @ _rz(w[layer, q, 0]) for q in range(n)}) @ psi
        for c, t in cnot_pairs(n, layer, entangler):
            psi = (_on(n, {c: _P0}) + _on(n, {c: _P1, t: _X})) @ psi
    probs = np.abs(psi) ** 2
    return np.array([_on(n, {q: np.diag([1, -1])}).diagonal() @ probs for q in range(n)])


@pytest.mark.parametrize("entangler", ["ring", "strongly_entangling"])
@pytest.mark.parametrize("n,rotation", [(1, "X"), (2, "Y"), (3, "Z"), (4, "X")])
def test_expectations_equal_the_dense_unitary_built_gate_by_gate(n, rotation, entangler):
    torch.manual_seed(10 + n)
    m = circuit(qubits=n, layers=3, entangler=entangler, rotation=rotation).build([(n,)]).double()
    x = torch.randn(4, n, dtype=torch.float64)
    y = m(x).detach().numpy()
    for b in range(4):
        np.testing.assert_allclose(y[b], numpy_circuit(n, entangler, rotation, x[b].numpy(), m.weights.detach().numpy()),
                                   atol=1e-12)


def test_strongly_entangling_ranges_follow_pennylane():
    assert cnot_pairs(4, 0, "strongly_entangling") == [(0, 1), (1, 2), (2, 3), (3, 0)]  # r = 1
    assert cnot_pairs(4, 1, "strongly_entangling") == [(0, 2), (1, 3), (2, 0), (3, 1)]  # r = 2
    assert cnot_pairs(4, 3, "strongly_entangling") == cnot_pairs(4, 0, "strongly_entangling")  # r cycles 1, 2, 3
    assert cnot_pairs(2, 0, "ring") == [(0, 1)] and cnot_pairs(2, 0, "strongly_entangling") == [(0, 1), (1, 0)]
    assert cnot_pairs(1, 0, "ring") == []


def test_state_stays_normalised_through_every_gate():
    torch.manual_seed(0)
    m = circuit(qubits=5, layers=4, measure="probs").build([(5,)])
    x = torch.randn(8, 5)
    psi = m.encode(x, torch.complex64)
    gates = m.gate_matrices(torch.complex64)
    norms = [psi.abs().square().sum(-1)]
    for layer in range(4):
        for q in range(5):
            psi = torch.einsum("ij,bljr->blir", gates[layer, q], psi.reshape(8, 2 ** q, 2, -1)).reshape(8, -1)
            norms.append(psi.abs().square().sum(-1))
        psi = psi.index_select(1, m.perms[layer])
    torch.testing.assert_close(torch.stack(norms), torch.ones(len(norms), 8), rtol=0, atol=1e-5)
    torch.testing.assert_close(m(x).sum(-1), torch.ones(8), rtol=0, atol=1e-5)  # the probabilities sum to 1


def test_leading_axes_are_kept():
    m = circuit(qubits=3).build([(6, 3)])
    x = torch.randn(2, 6, 3)
    torch.testing.assert_close(m(x), m(x.reshape(12, 3)).reshape(2, 6, 3))


# --- FLOPs: counted from the aten ops the forward actually runs ------------------------------------
_FREE = {"view", "_unsafe_view", "reshape", "permute", "clone", "select", "unsqueeze", "stack", "complex", "zeros_like",
         "index_select", "view_as_real", "constant_pad_nd", "detach", "_to_copy", "expand", "slice", "t", "transpose",
         "alias", "lift_fresh", "squeeze", "_conj", "resolve_conj", "copy_", "empty_like"}
_ELEMENTWISE = {"mul", "add", "sub", "div", "neg", "cos", "sin", "sqrt", "pow", "clamp_min"}


class _CountFlops(TorchDispatchMode):
    """Real FLOPs by the docs' conventions: mm/bmm 2·m·k·n (×4 when complex: a complex multiply-add is 8);
    elementwise 1 per output element (complex multiply 6, complex add 2); sums n−1; moves and views 0.
    Any other op fails the test, so a new op in the forward must be classified here."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        cplx = isinstance(out, torch.Tensor) and out.is_complex()
        if name in ("mm", "bmm"):
            a, b = args[0], args[1]
            self.flops += 2 * a.numel() * b.shape[-1] * (4 if cplx else 1)
        elif name in _ELEMENTWISE:
            self.flops += out.numel() * ({"mul": 6, "add": 2, "sub": 2}[name] if cplx else 1)
        elif name == "sum":
            self.flops += args[0].numel() - out.numel()
        elif name not in _FREE:
            raise AssertionError(f"unclassified op in the forward: {func}")
        return out


@pytest.mark.parametrize("kw,width", [
    ({"qubits": 4, "entangler": "ring"}, 4),
    ({"qubits": 5, "rotation": "Y", "layers": 3}, 5),
    ({"qubits": 3, "rotation": "Z", "measure": "probs"}, 3),
    ({"qubits": 4, "encoding": "amplitude", "entangler": "ring"}, 11),
])
def test_flops_per_sample_equal_the_ops_the_forward_runs(kw, width):
    layer = circuit(**kw)
    m = layer.build([(width,)])
    counts = []
    for batch in (3, 8):  # the difference removes the once-per-batch gate-matrix construction
        x = torch.randn(batch, width)
        with _CountFlops() as c:
            m(x)
        counts.append(c.flops)
    assert (counts[1] - counts[0]) // 5 == layer.flops([(width,)], layer.output_shape([(width,)]))
    assert (counts[1] - counts[0]) % 5 == 0
    n, depth = layer.qubits, layer.layers
    assert circuit_flops(n, depth, width, layer.encoding, layer.rotation, layer.measure)["gates"] == 16 * depth * n * 2 ** n


def test_cost_doubles_with_each_qubit():
    f = [circuit(qubits=n, layers=2).flops([(n,)], (n,)) for n in (8, 9, 10)]
    assert 2.1 < f[1] / f[0] < 2.4 and 2.1 < f[2] / f[1] < 2.4  # 2·(n+1)/n and the 2ⁿ·n terms


# --- errors --------------------------------------------------------------------------------------
def test_a_circuit_too_large_for_memory_is_a_located_error_with_the_memory_it_needs():
    spec = {"model": {"input_shape": [40], "layers": [{"type": "quantum_circuit", "name": "q", "qubits": 40}]}}
    with pytest.raises(SpecError) as e:
        lf.validate(spec)
    (issue,) = e.value.issues
    assert issue.path == ("model", "layers", 0) and issue.layer == "quantum_circuit 'q'"
    assert "2^40 complex64 amplitudes = 8.0 TiB per state vector and sample" in issue.message
    assert "keeps about 82 of them" in issue.message and "656.0 TiB for a single sample" in issue.message
    assert "qubits fit here at depth 2" in issue.hint


def test_angle_encoding_needs_one_feature_per_qubit():
    with pytest.raises(ShapeError, match=r"input width 6, qubits 4") as e:
        circuit(qubits=4).output_shape([(6,)])
    assert "units: 4" in e.value.hint
    with pytest.raises(ShapeError, match=r"at most 2\^3 = 8 features, got 9"):
        circuit(qubits=3, encoding="amplitude").output_shape([(9,)])


def test_parameter_count_and_summary_info():
    spec = {"model": {"input_shape": [4], "layers": [{"type": "quantum_circuit", "qubits": 4, "layers": 3},
                                                    {"type": "quantum_circuit", "qubits": 4, "entangler": "ring"}]}}
    s = lf.summarize(spec)
    assert [r.params for r in s.layers] == [3 * 4 * 3, 2 * 4]
    assert s.layers[0].info["state"] == "2^4 amplitudes, 128 B/sample"


def test_the_simulation_runs_in_float32_under_bf16_autocast():
    m = circuit(qubits=4).build([(4,)])
    x = torch.randn(3, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, m(x))


@pytest.mark.cuda
def test_cuda_simulation_equals_the_cpu_one():
    torch.manual_seed(0)
    m = circuit(qubits=6, layers=3, entangler="ring").build([(6,)])
    x = torch.randn(5, 6, requires_grad=True)
    y = m(x)
    y.sum().backward()
    mc, xc = m.cuda(), x.detach().cuda().requires_grad_(True)
    yc = mc(xc)
    yc.sum().backward()
    torch.testing.assert_close(yc.cpu(), y.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(xc.grad.cpu(), x.grad, rtol=1e-5, atol=1e-5)
