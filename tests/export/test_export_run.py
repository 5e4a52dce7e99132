"""`layerforge export` on a trained digits CNN: the ONNX file gives `layerforge evaluate`'s test accuracy in
onnxruntime and `layerforge predict`'s probabilities on raw inputs; the pt2 file runs where layerforge cannot
be imported; safetensors holds the weights and the metadata; bad cases are clear errors with exit code 2."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import layerforge as lf
from layerforge.build import data_facts
from layerforge.data import load_data
from layerforge.errors import ExportError
from tests.helpers import run_cli


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """The README's digits CNN (configs/cnn_digits.yaml), trained for 2 epochs."""
    out = tmp_path_factory.mktemp("export") / "run"
    lf.train("configs/cnn_digits.yaml", overrides=["train.epochs=2", "train.plots=false", "train.device=cpu"], out=out)
    return out


def raw_split(run_dir, split: str):
    """The split's inputs as `layerforge predict` takes them (before standardisation), and its labels."""
    trained = lf.load_run(run_dir)
    part = getattr(load_data(trained.spec, data_facts(trained.graph)), split)
    (raw,) = trained.transform.inverse(part.x)
    return raw, part.y


def test_onnx_export_of_the_digits_cnn_gives_evaluates_accuracy_and_predicts_probabilities(digits_run, capsys):
    import onnxruntime as ort

    r = run_cli(capsys, "export", str(digits_run), "--format", "onnx", "--json")
    assert r.code == 0, r.err
    info = json.loads(r.out)
    assert info["check"]["source"] == "val split" and info["check"]["samples"] > 256
    assert 0 < info["check"]["max_abs_diff"] <= info["check"]["limit"]  # float kernels differ a little, not more
    sess = ort.InferenceSession(info["path"], providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape) for i in sess.get_inputs()] == [("input", ["batch", 1, 8, 8])]
    meta = sess.get_modelmeta().custom_metadata_map
    assert json.loads(meta["labels"]) == [str(d) for d in range(10)] and json.loads(meta["includes_transform"])
    assert "conv1" in meta["spec"] and json.loads(meta["transform"])["kind"] == "standardize"

    x, y = raw_split(digits_run, "test")
    logits = sess.run(None, {"input": x.numpy()})[0]
    onnx_acc = float((logits.argmax(1) == y.numpy()).mean())
    assert onnx_acc == pytest.approx(lf.evaluate(digits_run, plot=False).metrics["accuracy"], abs=1e-12)
    p = lf.predict(digits_run, x, probabilities=True)
    probs = torch.softmax(torch.from_numpy(logits).double(), -1).numpy()
    np.testing.assert_allclose(probs, p.probabilities, atol=1e-5)


def test_pt2_export_runs_with_torch_alone_on_raw_inputs(digits_run, tmp_path):
    res = lf.export_run(digits_run, "pt2", out=tmp_path / "digits.pt2")
    assert res.check.max_abs_diff <= 1e-5 and res.inputs[0]["shape"][0] == "batch"
    x, _ = raw_split(digits_run, "val")
    np.save(tmp_path / "x.npy", x[:7].numpy())
    np.save(tmp_path / "want.npy", lf.load_run(digits_run)(x[:7]).numpy())
    probe = textwrap.dedent(f"""
        import importlib.abc, json, sys
        class NoLayerforge(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "layerforge":
                    raise ImportError("layerforge is blocked")
        sys.meta_path.insert(0, NoLayerforge())
        import numpy as np, torch
        try:
            import layerforge
            sys.exit("layerforge was importable")
        except ImportError:
            pass
        extra = {{"layerforge.json": ""}}
        m = torch.export.load({str(res.path)!r}, extra_files=extra).module()
        y = m(torch.from_numpy(np.load({str(tmp_path / 'x.npy')!r})))
        d = float((y - torch.from_numpy(np.load({str(tmp_path / 'want.npy')!r}))).abs().max())
        print(json.dumps({{"diff": d, "labels": json.loads(extra["layerforge.json"])["labels"]}}))
    """)
    r = subprocess.run([sys.executable, "-I", "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["diff"] <= 1e-5 and out["labels"][:3] == ["0", "1", "2"]


def test_static_batch_export_without_transform_takes_standardised_batches_of_one_size(digits_run, tmp_path):
    res = lf.export_run(digits_run, "pt2", dynamic_batch=False, batch_size=4, include_transform=False,
                        out=tmp_path / "b4.pt2")
    assert res.inputs[0]["shape"] == [4, 1, 8, 8] and not res.include_transform
    m = torch.export.load(str(res.path)).module()
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(m(x[:4]), lf.load_model(digits_run)(x[:4]), atol=1e-5, rtol=0)
    with pytest.raises(Exception, match="size|shape|Guard|4"):  # torch.export's input check: the batch is fixed
        m(x)


def test_safetensors_export_holds_the_weights_and_the_metadata(digits_run, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    res = lf.export_run(digits_run, "safetensors", out=tmp_path / "w.safetensors")
    assert res.check.max_abs_diff == 0.0
    model = lf.load_model(digits_run)
    weights = load_file(str(res.path))
    assert weights.keys() == model.state_dict().keys()
    with safe_open(str(res.path), framework="pt") as f:
        meta = f.metadata()
    assert json.loads(meta["labels"])[9] == "9" and "conv3" in meta["spec"]
    assert json.loads(meta["transform"])["kind"] == "standardize"
    rebuilt = lf.build_model(__import__("yaml").safe_load(meta["spec"]))
    rebuilt.load_state_dict(weights)
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(rebuilt.eval()(x), model(x))


def test_a_mismatch_beyond_the_tolerance_fails_with_exit_2_and_keeps_the_earlier_file(digits_run, tmp_path, capsys,
                                                                                     monkeypatch):
    from layerforge.export import torch_formats

    rebuild = torch_formats.rebuild

    def off_by_a_little(path):  # an exporter bug: the file's model computes something slightly different
        model = rebuild(path)
        with torch.no_grad():
            model.layers["logits"].bias.add_(1e-3)
        return model

    monkeypatch.setattr(torch_formats, "rebuild", off_by_a_little)
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"an earlier export")
    r = run_cli(capsys, "export", str(digits_run), "--format", "safetensors", "--out", str(out))
    assert r.code == 2 and "Traceback" not in r.err
    assert "does not compute what the trained model does" in r.err and "max |safetensors − torch| = 0.001" in r.err
    assert out.read_bytes() == b"an earlier export" and sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]
    r = run_cli(capsys, "export", str(digits_run), "--format", "safetensors", "--out", str(out), "--tolerance", "1e-2")
    assert r.code == 0, r.err  # within a looser tolerance it is kept


PLUGIN = '''
from pydantic import Field
from layerforge.layers import LayerSpec, register


@register("sign_gate", family="plugin")
class SignGate(LayerSpec):
    """Passes the batch when its sum is positive, else negates it (Python control flow on data).

    **Formula.** y = x if Σx > 0 else −x. **Shapes.** any. **FLOPs** n. **Equivalents.** none.
    """
    example = "- {type: sign_gate}"
    example_inputs = [(4,)]

    def output_shape(self, in_shapes):
        return in_shapes[0]

    def build(self, in_shapes):
        import torch

        class Gate(torch.nn.Module):
            def forward(self, x):
                return x if x.sum() > 0 else -x

        return Gate()


@register("singular_values", family="plugin")
class SingularValues(LayerSpec):
    """The singular values of each sample seen as a square matrix (ONNX has no SVD).

    **Formula.** y = σ(X). **Shapes.** (n·n,) → (n,). **FLOPs** n³. **Equivalents.** torch.linalg.svdvals.
    """
    side: int = Field(description="n")
    example = "- {type: singular_values, side: 2}"
    example_inputs = [(4,)]

    def output_shape(self, in_shapes):
        return (self.side,)

    def build(self, in_shapes):
        import torch
        side = self.side

        class Svd(torch.nn.Module):
            def forward(self, x):
                return torch.linalg.svd(x.reshape(x.shape[0], side, side))[1]

        return Svd()


@register("pair_up", family="plugin")
class PairUp(LayerSpec):
    """Folds the batch into pairs of samples: it only works for a batch of exactly 2.

    **Formula.** y = reshape(x, (2, −1)). **Shapes.** (n,) → (n,). **FLOPs** 0. **Equivalents.** none.
    """
    example = "- {type: pair_up}"
    example_inputs = [(4,)]

    def output_shape(self, in_shapes):
        return in_shapes[0]

    def build(self, in_shapes):
        import torch

        class Pair(torch.nn.Module):
            def forward(self, x):
                return x.reshape(2, -1).reshape(x.shape)

        return Pair()
'''


@pytest.fixture
def plugin(tmp_path):
    p = tmp_path / "odd_layers.py"
    p.write_text(PLUGIN)
    return p


def test_a_layer_torch_export_cannot_trace_is_named_with_the_format_exit_2(plugin, tmp_path, capsys):
    from tests.engine.engine_helpers import class_bundle

    spec = {"name": "gated", "plugins": [str(plugin)],
            "model": {"input_shape": [6], "layers": [{"type": "dense", "units": 4},
                                                      {"type": "sign_gate", "name": "gate"},
                                                      {"type": "dense", "units": 3}]},
            "train": {"epochs": 1, "batch_size": 32, "device": "cpu", "plots": False}}
    lf.train(spec, data=class_bundle(), out=tmp_path / "run")
    r = run_cli(capsys, "export", str(tmp_path / "run"), "--format", "pt2")
    assert r.code == 2 and "Traceback" not in r.err
    assert "layer 'gate' (type sign_gate) cannot be exported to pt2" in r.err
    assert "data-dependent" in r.err  # the exporter's reason
    assert not (tmp_path / "run" / "export" / "model.pt2").exists()


def test_a_layer_onnx_cannot_translate_is_named_from_the_failing_node(plugin):
    from layerforge.build import build
    from layerforge.export import onnx_format
    from layerforge.export.program import example_inputs, export_program

    spec, graph, model = build({"plugins": [str(plugin)], "model": {"input_shape": [4], "layers": [
        {"type": "dense", "units": 4}, {"type": "singular_values", "name": "svd", "side": 2}]}})
    program = export_program(model.eval(), model, graph, example_inputs(graph, 2), "onnx", True)  # torch.export is fine
    with pytest.raises(ExportError, match=r"layer 'svd' \(type singular_values\) cannot be exported to onnx"):
        onnx_format.convert(program, model, graph, None, ["input"], ["svd"], True)


def test_a_layer_that_fixes_the_batch_size_is_named_and_static_batch_is_suggested(plugin):
    from layerforge.build import build
    from layerforge.export.program import example_inputs, export_program

    spec, graph, model = build({"plugins": [str(plugin)], "model": {"input_shape": [4], "layers": [
        {"type": "dense", "units": 4}, {"type": "pair_up", "name": "pairs"}]}})
    with pytest.raises(ExportError, match=r"layer 'pairs' \(type pair_up\) fixes the batch size") as e:
        export_program(model.eval(), model, graph, example_inputs(graph, 2), "pt2", True)
    assert "--static-batch" in e.value.hint
    export_program(model, model, graph, example_inputs(graph, 2), "pt2", False)  # a fixed batch of 2 exports


def test_a_type_listed_as_not_exportable_is_refused_before_any_work(digits_run, monkeypatch):
    from layerforge.export import program

    monkeypatch.setitem(program.NOT_EXPORTABLE, "maxpool2d", {"onnx": "a reason given in the list"})
    with pytest.raises(ExportError, match=r"layer 'maxpool2d_1' \(type maxpool2d\) cannot be exported to onnx: "
                                          r"a reason given in the list"):
        lf.export_run(digits_run, "onnx")


def test_a_missing_export_package_names_the_extra(digits_run, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    r = run_cli(capsys, "export", str(digits_run), "--format", "onnx")
    assert r.code == 2
    assert "onnxscript" in r.err and 'pip install "layerforge[export]"' in r.err


def test_bad_option_combinations_are_usage_errors(digits_run, capsys):
    r = run_cli(capsys, "export", str(digits_run), "--format", "pt2", "--opset", "18")
    assert r.code == 2 and "--opset applies to --format onnx" in r.err
    r = run_cli(capsys, "export", str(digits_run), "--batch-size", "8")
    assert r.code == 2 and "--static-batch" in r.err


@pytest.mark.slow  # trains and exports in a fresh process: ~30 s on 2 cores
def test_the_export_benchmark_smoke_prints_accuracy_and_latency_tables():
    from tests.test_benchmarks import _run

    out = _run("export_latency.py")
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    for runtime in ("torch eager", "pt2 (torch.export)", "onnxruntime"):
        acc = next(r for r in rows if r.startswith(f"| {runtime} |"))
        assert acc.rstrip().endswith("| yes |"), acc  # the same test accuracy as layerforge evaluate
    assert any(r.startswith("| 1 |") and "(1.00×)" in r for r in rows)
