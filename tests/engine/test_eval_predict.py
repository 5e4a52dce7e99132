"""Evaluate and predict from a run directory alone: the saved spec, weights and data transform are
re-applied, so predictions on a file equal the trained model's outputs on the same standardised inputs."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import layerforge as lf
from layerforge.errors import UsageError


def _write_csv(path: Path, x: np.ndarray, y: np.ndarray | None) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"f{j}" for j in range(x.shape[1])] + (["label"] if y is not None else []))
        for i in range(len(x)):
            w.writerow([f"{v:.6f}" for v in x[i]] + ([["cat", "dog", "eel"][y[i]]] if y is not None else []))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("evalpredict")
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, size=(200, 4))  # far from standardised: the saved transform matters
    y = (x[:, 0] > 5).astype(int) + (x[:, 1] > 5).astype(int)
    _write_csv(tmp / "train.csv", x, y)
    _write_csv(tmp / "new.csv", x[:10], None)
    _write_csv(tmp / "labelled.csv", x[:50], y[:50])
    (tmp / "spec.yaml").write_text("""\
# Run: layerforge train spec.yaml
name: animals
model:
  input_shape: [4]
  layers:
    - {type: dense, units: 32, activation: relu}
    - {type: dense, units: 3}
data: {path: train.csv, target: label, val: 0.2, test: 0.2}
train: {epochs: 15, batch_size: 16, device: cpu, plots: false, optimizer: {name: adam, lr: 0.01}}
""")
    res = lf.train(tmp / "spec.yaml", out=tmp / "run")
    return {"dir": tmp, "run": tmp / "run", "result": res, "x": x, "y": y}


def test_evaluate_test_split_reports_metrics_confusion_and_png(trained):
    ev = lf.evaluate(trained["run"])
    assert ev.split == "test" and ev.samples == 40 and ev.checkpoint == "best"
    assert set(ev.metrics) == {"loss", "accuracy"}
    assert sum(map(sum, ev.confusion)) == 40
    assert ev.class_names == ["cat", "dog", "eel"]
    assert ev.plot is not None and ev.plot.read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((trained["run"] / "eval_test.json").read_text())
    assert saved["metrics"] == ev.metrics


def test_evaluate_val_split_matches_the_training_record(trained):
    ev = lf.evaluate(trained["run"], split="val")
    best = trained["result"].best
    assert ev.metrics["loss"] == pytest.approx(best["val_loss"], rel=1e-6)
    assert ev.metrics["accuracy"] == pytest.approx(best["val_accuracy"])


def test_predict_applies_the_saved_transform_and_matches_the_model(trained, tmp_path):
    import torch

    run = trained["run"]
    res = lf.predict(run, trained["dir"] / "new.csv", output=tmp_path / "p.csv", probabilities=True)
    # by hand: standardise with training statistics, run the best checkpoint's model
    from layerforge.engine.evaluate import load_trained

    _, _, _, model, _, _ = load_trained(run)
    state = json.loads((run / "transform.json").read_text())
    mean = np.array(state["inputs"][""]["mean"]).reshape(state["inputs"][""]["shape"])
    std = np.array(state["inputs"][""]["std"]).reshape(state["inputs"][""]["shape"])
    xs = torch.tensor(((trained["x"][:10].round(6) - mean) / std), dtype=torch.float32)
    with torch.no_grad():
        want = model(xs).argmax(1).numpy()
    assert (res.predictions == want).all()
    assert res.predicted_names() == [["cat", "dog", "eel"][i] for i in want]
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert [r["predicted_name"] for r in rows] == res.predicted_names()
    assert [int(r["predicted"]) for r in rows] == list(want)
    assert rows[0]["row"] == "line 2" and set(rows[0]) == {"row", "predicted", "predicted_name", "p_cat", "p_dog", "p_eel"}
    assert res.targets is None and res.accuracy is None  # new.csv has no label column
    assert np.allclose(res.probabilities.sum(1), 1, atol=1e-5)


def test_predict_on_a_labelled_file_shows_both_columns_and_the_accuracy(trained, tmp_path):
    res = lf.predict(trained["run"], trained["dir"] / "labelled.csv", output=tmp_path / "p.csv")
    truth = trained["y"][:50]
    assert (res.targets == truth).all()
    assert res.accuracy == pytest.approx((res.predictions == truth).mean())
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert list(rows[0]) == ["row", "predicted", "predicted_name", "true", "true_name"]
    assert [r["true_name"] for r in rows] == [["cat", "dog", "eel"][i] for i in truth]
    assert res.to_dict()["accuracy"] == res.accuracy


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_predict_writes_numpy_files(trained, tmp_path, suffix):
    out = tmp_path / f"p{suffix}"
    res = lf.predict(trained["run"], trained["dir"] / "new.csv", output=out, probabilities=True)
    loaded = np.load(out)
    if suffix == ".npy":
        assert loaded.shape == (10, 3) and np.allclose(loaded, res.probabilities)
    else:
        assert (loaded["predictions"] == res.predictions).all() and loaded["probabilities"].shape == (10, 3)


def test_predict_accepts_an_array_in_python(trained):
    a = lf.predict(trained["run"], trained["x"][:10].round(6).astype(np.float32))
    b = lf.predict(trained["run"], trained["dir"] / "new.csv")
    assert (a.predictions == b.predictions).all()


def test_evaluate_a_labelled_file(trained):
    ev = lf.evaluate(trained["run"], data=trained["dir"] / "labelled.csv", plot=False)
    assert ev.samples == 50 and ev.split.endswith("labelled.csv")
    res = lf.predict(trained["run"], trained["dir"] / "labelled.csv")
    assert ev.metrics["accuracy"] == pytest.approx((res.predictions == trained["y"][:50]).mean())


def test_missing_split_explains_how_to_get_one(tmp_path):
    from tests.engine.engine_helpers import mlp_spec

    spec = mlp_spec(epochs=1)
    spec["data"] = {"dataset": "iris", "val": 0.2}
    spec["model"]["input_shape"] = [4]
    lf.train(spec, out=tmp_path / "run")
    with pytest.raises(UsageError, match="no test split") as e:
        lf.evaluate(tmp_path / "run")
    assert "--split val" in e.value.hint


def test_predict_output_format_is_checked(trained, tmp_path):
    with pytest.raises(UsageError, match="unknown output format"):
        lf.predict(trained["run"], trained["dir"] / "new.csv", output=tmp_path / "p.xlsx")


def test_training_writes_loss_and_metric_curves(tmp_path):
    from tests.engine.engine_helpers import class_bundle, mlp_spec

    res = lf.train(mlp_spec(epochs=2, plots=True), data=class_bundle(), out=tmp_path / "run")
    assert res.plot_process is not None and res.plot_process.wait(timeout=120) == 0  # drawn in the background
    for name in ("loss.png", "accuracy.png", "f1.png", "lr.png"):
        assert (tmp_path / "run" / "plots" / name).read_bytes()[:4] == b"\x89PNG", name
