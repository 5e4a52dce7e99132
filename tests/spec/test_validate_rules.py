"""`layerforge validate` checks everything the spec can tell before training, each at its file:line:col:
the loss against the output, metrics against the head, the monitor key against the metrics that will
exist, a softmax/sigmoid output before a loss that applies it (a warning with the fix), and — unless
--no-data — the data itself (files, columns, a sample's shape, the targets against the output)."""
from __future__ import annotations

import json

import pytest

from tests.helpers import run_cli, write_spec

HEAD = """\
name: rules
model:
  input_shape: [4]
  layers:
    - {type: dense, units: 8, activation: relu}
"""
IRIS = "data: {dataset: iris, val: 0.2}\n"


def _validate(capsys, tmp_path, text, *args):
    return run_cli(capsys, "validate", str(write_spec(tmp_path, text)), *args)


ERRORS = {
    # name: (spec text, [fragments that must appear in stderr, the first being the location])
    "one_logit_for_cross_entropy": (HEAD + "    - {type: dense, units: 1}\n" + IRIS + "train: {loss: cross_entropy}\n",
                                    ["spec.yaml:6:7 model.layers[1]", "cross_entropy needs one logit per class"]),
    "class_weights_length": (HEAD + "    - {type: dense, units: 3}\n" + IRIS
                             + "train:\n  loss: {name: cross_entropy, class_weights: [1, 2]}\n",
                             ["spec.yaml:9:31 train.loss.class_weights", "2 entries but the model outputs 3 classes"]),
    "class_metric_on_real_targets": (HEAD + "    - {type: dense, units: 1}\n" + IRIS
                                     + "train:\n  loss: mse\n  metrics: [mae, accuracy]\n",
                                     ["spec.yaml:10:18 train.metrics[1]", "'accuracy' needs class labels"]),
    "top_k_beyond_the_classes": (HEAD + "    - {type: dense, units: 3}\n" + IRIS + "train: {metrics: [top_5]}\n",
                                 ["spec.yaml:8:19 train.metrics[0]", "needs at least 5 classes, the model has 3"]),
    "misspelt_monitor": (HEAD + "    - {type: dense, units: 3}\n" + IRIS
                         + "train:\n  metrics: [accuracy]\n  early_stopping: {monitor: val_acuracy}\n",
                         ["spec.yaml:10:20 train.early_stopping.monitor", "cannot monitor 'val_acuracy'",
                          "did you mean 'val_accuracy'?"]),
    "val_monitor_without_a_val_split": (HEAD + "    - {type: dense, units: 3}\ndata: {dataset: iris, val: 0}\n"
                                        + "train: {early_stopping: {monitor: val_loss}}\n",
                                        ["spec.yaml:8:26 train.early_stopping.monitor", "there is no validation split"]),
    "missing_data_file": (HEAD + "    - {type: dense, units: 3}\ndata:\n  path: flowers.csv\n  target: species\n",
                          ["spec.yaml:8:3 data.path", "not found", "relative to the spec file's folder"]),
    "missing_target_column": (HEAD + "    - {type: dense, units: 3}\ndata:\n  path: t.csv\n  target: specie\n",
                              ["spec.yaml:9:3 data.target", "no column 'specie'", "did you mean 'species'?"]),
    "sample_shape_against_input_shape": (HEAD.replace("[4]", "[5]") + "    - {type: dense, units: 3}\n"
                                         "data:\n  path: t.csv\n  target: species\n",
                                         ["spec.yaml:3:3 model.input_shape", "each sample has shape [4]",
                                          "set model.input_shape: [4]"]),
    "targets_against_the_output": (HEAD + "    - {type: dense, units: 2}\ndata:\n  path: t.csv\n  target: species\n",
                                   ["spec.yaml:6:7 model.layers[1]", "need 3 classes", "units: 3"]),
}


def _table(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,c,d,species\n" + "".join(f"{i},{i},{i},{i},{'xyz'[i % 3]}\n" for i in range(9)))


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_validate_reports_train_and_data_problems_at_their_line(case, tmp_path, capsys):
    _table(tmp_path)
    text, expected = ERRORS[case]
    r = _validate(capsys, tmp_path, text)
    assert r.code == 2, (r.out, r.err)
    assert "Traceback" not in r.err
    for fragment in expected:
        assert fragment in r.err, f"{fragment!r} not in:\n{r.err}"


def test_no_data_skips_reading_the_data(tmp_path, capsys):
    text, _ = ERRORS["missing_data_file"]
    r = _validate(capsys, tmp_path, text, "--no-data", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["data"] == "not read (--no-data)"


def test_softmax_before_cross_entropy_is_a_located_warning_with_the_fix(tmp_path, capsys):
    r = _validate(capsys, tmp_path, HEAD + "    - {type: dense, units: 3, activation: softmax}\n" + IRIS)
    assert r.code == 0, r.err
    assert "warning" in r.err and "spec.yaml:6:31 model.layers[1].activation" in r.err
    assert "applies softmax, but cross_entropy expects raw logits" in r.err
    assert "remove activation: softmax" in r.err and "from_logits" in r.err
    r = _validate(capsys, tmp_path, HEAD + "    - {type: dense, units: 3, activation: softmax}\n" + IRIS, "--json")
    (w,) = json.loads(r.out)["warnings"]
    assert (w["line"], w["path"]) == (6, "model.layers[1].activation")


def test_sigmoid_before_bce_is_a_warning_and_a_plain_output_is_not(tmp_path, capsys):
    bce = HEAD + "    - {type: dense, units: 1, activation: sigmoid}\n" + "data: {dataset: breast_cancer}\ntrain: {loss: bce}\n"
    r = _validate(capsys, tmp_path, bce.replace("[4]", "[30]"))
    assert r.code == 0 and "applies sigmoid, but bce expects raw logits" in r.err, r.err
    r = _validate(capsys, tmp_path, HEAD + "    - {type: dense, units: 3}\n" + IRIS)
    assert r.code == 0 and "warning" not in r.err, r.err


def test_the_python_api_warns_too(tmp_path):
    import layerforge as lf

    spec = {"model": {"input_shape": [4], "layers": [{"type": "dense", "units": 3, "activation": "softmax"}]},
            "data": {"dataset": "iris"}}
    with pytest.warns(lf.SpecWarning, match="double softmax"):
        lf.validate(spec)


def test_several_errors_are_listed_in_file_order(tmp_path, capsys):
    text = HEAD.replace("units: 8", "units: -8") + "    - {type: dense, units: 3}\n" + IRIS + "train: {epochs: 0}\nseed: x\n"
    r = _validate(capsys, tmp_path, text)
    assert r.code == 2
    lines = [l for l in r.err.splitlines() if "spec.yaml:" in l]
    locations = [tuple(int(x) for x in l.split("spec.yaml:")[1].split(" ")[0].split(":")) for l in lines]
    assert len(locations) == 3 and locations == sorted(locations), r.err
