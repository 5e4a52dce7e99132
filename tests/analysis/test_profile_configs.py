"""Every example config (configs/**/*.yaml, found recursively) profiles on the CPU at a small batch size:
inference and a training step, per-layer times, memory measured and estimated, a verdict."""
from __future__ import annotations

import pytest

from layerforge.analysis.compare import profile_configs
from tests.analysis.conftest import FAST
from tests.conftest import CONFIGS, ROOT


def test_there_are_example_configs_to_profile():
    assert len(CONFIGS) >= 1, "configs/**/*.yaml is empty"


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(ROOT)) for p in CONFIGS])
def test_example_config_profiles_at_a_small_size(path):
    r = profile_configs([str(path)], settings={**FAST, "batch_sizes": [2], "mode": "both"}, quick=True)
    (cfg,) = r.configs
    (b,) = cfg.batches
    assert b.inference is not None and b.inference.median > 0
    assert not cfg.uncounted and cfg.flops_per_sample > 0
    assert all(lp.forward is not None for lp in b.layers)
    assert {m.mode for m in b.memory} == ({"inference", "train"} if b.train is not None else {"inference"})
    assert cfg.verdict.startswith("batch 2")
