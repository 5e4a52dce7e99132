"""A run used from plain PyTorch: lf.load_model / lf.load_run give the trained module, the saved
standardisation as a module (equal to the data package's own transform), the label names, and one module
over raw inputs that agrees with `layerforge predict`. The built module compiles with torch.compile; it
cannot be scripted with TorchScript (docs/export.md says why and what to use instead)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import layerforge as lf
from layerforge.data.transforms import Standardize
from layerforge.engine.trained import standardizer


def test_the_standardizer_module_applies_the_saved_transform_exactly():
    g = torch.Generator().manual_seed(0)
    table = torch.randn(50, 4, generator=g) * 3 + 5  # (N, F): per feature
    image = torch.rand(50, 2, 5, 5, generator=g) * 255  # (N, C, H, W): per channel
    ids = torch.randint(0, 9, (50, 7), generator=g)  # integer ids pass unchanged
    multi = Standardize().fit({"table": table, "image": image, "ids": ids})
    mod = standardizer(["table", "image", "ids"], multi.state_dict())
    want = multi.apply({"table": table, "image": image, "ids": ids})
    got = mod(table, image, ids)
    for name, t in zip(["table", "image", "ids"], got):
        assert torch.equal(t, want[name]), name
    back = mod.inverse(*got)
    torch.testing.assert_close(back[0], table)
    torch.testing.assert_close(back[1], image, rtol=1e-6, atol=1e-4)
    single = Standardize().fit(table)
    assert torch.equal(standardizer(["x"], single.state_dict())(table), single.apply(table))
    assert torch.equal(standardizer(["x"], None)(table), table)  # no transform saved: identity


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "run"
    lf.train("configs/mlp_iris.yaml", overrides=["train.epochs=5", "train.plots=false"], out=out)
    return out


def test_load_run_gives_module_transform_and_labels_that_agree_with_predict(iris_run):
    from safetensors.torch import load_file

    run = lf.load_run(iris_run)
    assert not run.module.training and run.checkpoint == "best"
    assert run.label_names == ["setosa", "versicolor", "virginica"]
    assert run.input_names == ["input"] and run.input_shapes == {"input": (4,)} and run.head.kind == "class"
    weights = load_file(str(iris_run / "checkpoints" / "best" / "model.safetensors"))
    assert all(torch.equal(weights[k], v) for k, v in run.module.state_dict().items())
    raw = torch.tensor([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])
    logits = run(raw)
    p = lf.predict(iris_run, raw.numpy(), probabilities=True)
    np.testing.assert_allclose(torch.softmax(logits, -1).numpy(), p.probabilities, atol=1e-6)
    assert [run.label_names[i] for i in logits.argmax(-1)] == p.predicted_names()
    assert torch.equal(lf.load_model(iris_run)(run.transform(raw)), logits)


@pytest.mark.slow  # torch.compile's first call compiles C++ kernels: ~10-30 s on 2 busy cores
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")  # torch's own use, inside compile
def test_torch_compile_of_a_built_graph_module_matches_eager():
    model = lf.build_model({"model": {"input_shape": {"a": [6], "b": [6]}, "layers": [
        {"type": "dense", "units": 8, "name": "p", "inputs": ["a"], "activation": "relu"},
        {"type": "dense", "units": 8, "name": "q", "inputs": ["b"]},
        {"type": "add", "inputs": ["p", "q"]}]}}).eval()
    compiled = torch.compile(model, fullgraph=True)  # fullgraph: no graph break anywhere in the forward
    a, b = torch.randn(3, 6), torch.randn(3, 6)
    with torch.no_grad():
        torch.testing.assert_close(compiled(a, b), model(a, b), atol=1e-6, rtol=1e-6)


def test_torchscript_cannot_script_the_built_module_as_the_docs_say():
    model = lf.build_model({"model": {"input_shape": [4], "layers": [{"type": "dense", "units": 2}]}})
    with warnings.catch_warnings(), pytest.raises(torch.jit.frontend.NotSupportedError, match="variable number of arguments"):
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript itself
        torch.jit.script(model)
