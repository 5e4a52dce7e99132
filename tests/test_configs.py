"""Every shipped example (configs/**/*.yaml, found recursively) validates, summarises and says how to run it."""
from __future__ import annotations

import pytest

import layerforge as lf
from tests.conftest import CONFIGS, ROOT


def test_there_are_examples_for_every_family():
    names = {p.stem for p in CONFIGS}
    assert len(CONFIGS) >= 9, names
    text = " ".join(p.read_text() for p in CONFIGS)
    for layer_type in ("dense", "conv2d", "simple_rnn", "lstm", "gru", "self_attention", "multi_head_attention", "add",
                       "spike_encode", "lif", "spike_readout"):
        assert f"type: {layer_type}" in text, f"no example uses {layer_type}"


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(ROOT)) for p in CONFIGS])
def test_example_validates_and_builds(path):
    spec, graph = lf.load_spec(path)
    summary = lf.summarize((spec, graph), batch_size=2)
    assert summary.total_params > 0 and summary.flops > 0 and not summary.uncounted
    first = path.read_text().lstrip().splitlines()[0]
    assert first.startswith("#") and "layerforge" in first, "each example starts with the command that runs it"
