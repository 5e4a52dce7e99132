"""Shared by the export tests."""
from __future__ import annotations

import functools

import pytest


@pytest.fixture(scope="session", autouse=True)
def _torchlib_table_built_once():
    """The ONNX exporter rebuilds its table of ~500 torchlib translations (reading each one's source) on
    every export: ~3 s here, for a table that never changes within a process. The tests build it once.
    (Speed of the test suite only; ``layerforge export`` exports once per process anyway.) If torch moves
    the function, nothing is cached and the tests only run slower."""
    try:
        from torch.onnx._internal import _lazy_import

        apis = _lazy_import.onnxscript_apis
        original = apis.get_torchlib_ops
    except (ImportError, AttributeError):
        yield
        return
    apis.get_torchlib_ops = functools.cache(original)
    yield
    apis.get_torchlib_ops = original
