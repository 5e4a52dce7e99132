"""Property-based fuzzing (issue 12): spec text and data files, mutated from valid ones with hostile pieces,
never end in anything but layerforge's own errors, and each call stays under a time limit (Hypothesis'
deadline). The example budget is the ``ci`` profile's (tests/conftest.py); ``--hypothesis-profile=long``
runs many more locally.
"""
from __future__ import annotations

import gzip
import io
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import layerforge as lf
from layerforge import data
from layerforge.build import data_facts, load
from layerforge.errors import LayerforgeError

BASES = [
    "seed: 1\nmodel:\n  input_shape: [8]\n  layers:\n    - {type: dense, units: 4, activation: relu}\n"
    "    - {type: dense, units: 2}\ntrain: {epochs: 2, batch_size: 4}\n",
    "model:\n  input_shape: [3, 8, 8]\n  layers:\n    - {type: conv2d, filters: 4, kernel_size: 3}\n"
    "    - {type: flatten}\n    - {type: dense, units: 3}\n",
    "model:\n  input_shape: [5, 4]\n  layers:\n    - {type: gru, units: 2, num_layers: 1}\n"
    "    - {type: dense, units: 2}\n",
    "name: x\nmodel:\n  input_shape: [6]\n  layers:\n    - name: a\n      type: dense\n      units: 3\n"
    "    - {type: dropout, rate: 0.5}\n",
]
HOSTILE = ["&a ", "*a", "<<: *a\n", "!!int ", "!!map ", "!!python/object/apply:os.system ['true']", "{", "}",
           "[", "]", ": ", "? ", "\n  ", "\n", "- ", "9223372036854775808", "4611686018427387904", "-1", "0",
           "1e999", ".nan", "2023-02-30", "\x00", "\x1b", '"', "'", "#", "---\n", "...\n", "%YAML 1.1\n",
           "units", "type", "num_layers: 100000000", "update", "..", "/abs", "plugins: [x.py]\n", "\t", "é",
           "[" * 200, "name: ../../x\n", "seed: 18446744073709551616\n", "layers", "input_shape: [1000000000, 1000000000]"]


def _mutate(text: str, edits: list[tuple[int, int, int, str]]) -> str:
    """Apply (position, delete-count, repeat, piece) edits: each deletes a few characters and inserts a
    piece (repeated), at a position taken modulo the current length."""
    for pos, cut, times, piece in edits:
        i = pos % (len(text) + 1)
        text = text[:i] + piece * times + text[i + cut:]
    return text


EDITS = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 8), st.integers(1, 3),
                           st.sampled_from(HOSTILE) | st.text(max_size=6)), min_size=1, max_size=6)
SCRATCH = Path(tempfile.mkdtemp(prefix="layerforge-fuzz-"))


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(BASES), edits=EDITS)
def test_fuzzed_spec_text_gives_a_spec_or_a_layerforge_error(base, edits):
    path = SCRATCH / "spec.yaml"
    path.write_text(_mutate(base, edits), encoding="utf-8", errors="surrogatepass")
    try:
        lf.validate(str(path), data=False)
    except LayerforgeError:
        pass


def _csv_bytes(cells: list[str], cols: int) -> bytes:
    rows = [cells[i:i + cols] for i in range(0, len(cells), cols)]
    return ("\n".join(",".join(r) for r in rows)).encode("utf-8", "surrogatepass")


def _npy_bytes(shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.zeros(shape, dtype=np.float32))
    return buf.getvalue()


CELLS = st.lists(st.sampled_from(["x0", "x1", "y", "1", "-2.5", "nan", "inf", '"a,b"', '"', "=1+1", "", "a" * 300,
                                  "\r", "\x00", "1e999", "0"]) | st.text(max_size=4),
                 min_size=0, max_size=40)
FILES = st.one_of(
    st.tuples(st.just("t.csv"), st.builds(_csv_bytes, CELLS, st.integers(1, 4))),
    st.tuples(st.just("t.csv.gz"), st.builds(_csv_bytes, CELLS, st.integers(1, 4)).map(gzip.compress)),
    st.tuples(st.just("x.npy"), st.builds(_npy_bytes, st.tuples(st.integers(0, 6), st.integers(1, 3)))),
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(file=FILES, edits=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 8), st.binary(max_size=8)),
                                  max_size=4))
def test_fuzzed_data_file_gives_data_or_a_layerforge_error(file, edits):
    name, content = file
    for pos, cut, piece in edits:  # corrupt the bytes, headers and checksums included
        i = pos % (len(content) + 1)
        content = content[:i] + piece + content[i + cut:]
    (SCRATCH / name).write_bytes(content)
    np.save(SCRATCH / "y.npy", np.zeros(6, dtype=np.int64))
    section = {"path": name, "target_path": "y.npy"} if name.endswith(".npy") else {"path": name, "target": "y"}
    spec, graph = lf.spec_from_dict({"model": {"input_shape": [3] if name.endswith(".npy") else [2],
                                               "layers": [{"type": "dense", "units": 2}]}, "data": section})
    try:
        data.load_data(spec, data_facts(load((spec, graph))[1]), SCRATCH)
    except LayerforgeError:
        pass
