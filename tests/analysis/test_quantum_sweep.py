"""A qubit sweep of the shipped hybrid config: several keys set together with '+', layers addressed by name,
and the circuit's FLOPs growing as n·2ⁿ."""
from __future__ import annotations

from layerforge.analysis.compare import profile_configs
from layerforge.layers.quantum import QuantumCircuit
from tests.analysis.conftest import FAST
from tests.conftest import ROOT


def test_qubit_sweep_of_the_hybrid_grows_the_circuit_and_its_input_together():
    r = profile_configs([str(ROOT / "configs" / "hybrid_iris.yaml")], quick=True,
                        settings={**FAST, "batch_sizes": [1], "mode": "inference"},
                        sweep="model.layers.proj.units+model.layers.q.qubits=2,5")
    sw = r.sweep
    assert sw.path == "model.layers.proj.units, model.layers.q.qubits" and sw.values == ["2", "5"]
    f2, f5 = (p.flops for p in sw.points)
    circuit = lambda n: QuantumCircuit(type="quantum_circuit", qubits=n, layers=2).flops([(n,)], (n,))  # noqa: E731
    dense = lambda n: (2 * 4 * n + n) + (2 * n * 3 + 3)  # noqa: E731  proj 4→n and the readout n→3
    assert (f2, f5) == (circuit(2) + dense(2), circuit(5) + dense(5))
