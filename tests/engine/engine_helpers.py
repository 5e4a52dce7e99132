"""Helpers for engine tests: tiny specs and in-memory DataBundles (no files, no data sources)."""
from __future__ import annotations

import copy
from typing import Any



def mlp_spec(**train: Any) -> dict:
    """A small MLP on 6 features, 3 classes; ``train`` entries override the train section."""
    spec = {
        "name": "tiny", "seed": 0,
        "model": {"input_shape": [6], "layers": [
            {"type": "dense", "units": 16, "activation": "relu"},
            {"type": "dropout", "rate": 0.2},
            {"type": "dense", "units": 3},
        ]},
        "train": {"epochs": 4, "batch_size": 16, "device": "cpu", "plots": False, "metrics": ["accuracy", "f1"]},
    }
    spec["train"].update(copy.deepcopy(train))
    return spec


def class_bundle(n: int = 120, features: int = 6, classes: int = 3, seed: int = 0, val: int = 30):
    """Linearly separable-ish classes from a fixed seed."""
    import torch

    from layerforge.data.bundle import DataBundle, Split

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n + val, features, generator=g)
    w = torch.randn(features, classes, generator=g)
    y = (x @ w).argmax(1)
    return DataBundle(task="classification", train=Split(x[:n], y[:n]), val=Split(x[n:], y[n:]) if val else None,
                      num_classes=classes, input_shapes={"input": (features,)})


def regression_bundle(n: int = 96, features: int = 5, seed: int = 0, val: int = 24):
    import torch

    from layerforge.data.bundle import DataBundle, Split

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n + val, features, generator=g)
    y = x @ torch.randn(features, generator=g) + 0.5
    return DataBundle(task="regression", train=Split(x[:n], y[:n]), val=Split(x[n:], y[n:]) if val else None,
                      input_shapes={"input": (features,)})


