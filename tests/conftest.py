import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# The fuzz suite's example budget (tests/test_fuzz.py): fixed and derandomized in CI; a longer local run with
# `python -m pytest tests/test_fuzz.py --hypothesis-profile=long`.
settings.register_profile("ci", max_examples=60, deadline=5000, derandomize=True, print_blob=True)
settings.register_profile("long", max_examples=5000, deadline=5000)
settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))


def pytest_configure(config):
    """Under pytest-xdist (the default: ``-n auto`` in pyproject.toml) each worker is one of N processes on
    the same cores, so each runs torch on one thread (and so do the processes its tests start): N workers
    × torch's default threads would oversubscribe the cores and run slower than one worker."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_cuda = False
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords and not has_cuda:
            item.add_marker(skip)


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture(autouse=True)
def _isolated_registry():
    """Plugins registered by one test do not leak into the next (nor into the generated docs)."""
    import importlib

    from layerforge import plugins

    reg = importlib.import_module("layerforge.layers.registry")

    reg.registry()  # built-ins loaded before the snapshot
    saved, loaded = dict(reg._REGISTRY), set(plugins._LOADED)
    yield
    reg._REGISTRY.clear()
    reg._REGISTRY.update(saved)
    plugins._LOADED.clear()
    plugins._LOADED.update(loaded)
