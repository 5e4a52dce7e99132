"""The YAML loader keeps positions, refuses duplicate keys and unsafe tags, and applies --set overrides."""
from __future__ import annotations

import pytest

from layerforge.errors import SpecError
from layerforge.spec.loader import Marks, apply_overrides, load_yaml_text, parse_override


def test_positions_point_at_keys():
    data, marks = load_yaml_text("name: x\nmodel:\n  layers:\n    - {type: dense, units: 3}\n", "f.yaml")
    assert data["model"]["layers"][0]["units"] == 3
    assert marks.positions[("model", "layers", 0, "units")] == (4, 21)
    assert marks.positions[("model",)] == (2, 1)


def test_duplicate_keys_are_refused_with_both_lines():
    with pytest.raises(SpecError) as e:
        load_yaml_text("a: 1\nb: 2\na: 3\n", "f.yaml")
    issue = e.value.issues[0]
    assert (issue.line, issue.column) == (3, 1)
    assert "duplicate key 'a'" in issue.message and "line 1" in issue.message


def test_python_tags_are_not_executed():
    with pytest.raises(SpecError) as e:
        load_yaml_text("a: !!python/object/apply:os.system ['echo hi']\n", "f.yaml")
    assert "python/object" in e.value.issues[0].message


def test_syntax_error_is_located():
    with pytest.raises(SpecError) as e:
        load_yaml_text("model:\n  layers: [1, 2\n  x: 3\n", "f.yaml")
    assert e.value.issues[0].line == 3


def test_override_values_are_yaml_scalars_and_create_missing_sections():
    marks = Marks("f.yaml")
    data = apply_overrides({"model": {"layers": [{"units": 3}]}},
                           ["model.layers.0.units=128", "train.epochs=5", "train.lr=1e-3", "name=abc", "x.flag=true"], marks)
    assert data["model"]["layers"][0]["units"] == 128
    assert data["train"] == {"epochs": 5, "lr": 1e-3}
    assert data["x"]["flag"] is True and data["name"] == "abc"
    assert marks.overridden[("train", "epochs")] == "--set train.epochs=5"


@pytest.mark.parametrize("item", ["noequals", "=3", "a..b=1"])
def test_malformed_overrides_are_errors(item):
    with pytest.raises(SpecError):
        parse_override(item)


def test_override_index_out_of_range_is_an_error():
    with pytest.raises(SpecError) as e:
        apply_overrides({"model": {"layers": [{}]}}, ["model.layers.5.units=1"], Marks("f"))
    assert "out of range" in e.value.issues[0].message
    assert e.value.issues[0].origin == "--set model.layers.5.units=1"


def test_override_addresses_a_layer_by_name_and_errors_point_at_its_index():
    marks = Marks("f.yaml")
    data = {"model": {"layers": [{"type": "conv2d", "name": "conv1"}, {"type": "dense", "name": "logits", "units": 10}]}}
    data = apply_overrides(data, ["model.layers.logits.units=12", "model.layers.conv1.filters=4"], marks)
    assert data["model"]["layers"][1]["units"] == 12 and data["model"]["layers"][0]["filters"] == 4
    assert marks.overridden[("model", "layers", 1, "units")] == "--set model.layers.logits.units=12"


def test_override_with_an_unknown_layer_name_suggests_the_close_one():
    data = {"model": {"layers": [{"type": "dense", "name": "logits"}, {"type": "dense", "name": "hidden"}]}}
    with pytest.raises(SpecError) as e:
        apply_overrides(data, ["model.layers.logit.units=3"], Marks("f"))
    (issue,) = e.value.issues
    assert "no entry named 'logit' in model.layers" in issue.message and issue.hint == "did you mean 'logits'?"
    assert issue.origin == "--set model.layers.logit.units=3"


def test_a_tab_is_reported_as_a_tab_with_its_position():
    with pytest.raises(SpecError) as e:
        load_yaml_text("model:\n  input_shape: [8]\n  layers:\n\t- {type: dense, units: 3}\n", "f.yaml")
    (issue,) = e.value.issues
    assert "tabs are not allowed" in issue.message and (issue.line, issue.column) == (4, 1)
    assert "spaces" in issue.hint


def test_override_can_address_a_layer_by_its_name():
    marks = Marks("f")
    data = {"model": {"layers": [{"type": "dense", "units": 4}, {"type": "quantum_circuit", "name": "q", "qubits": 4}]}}
    data = apply_overrides(data, ["model.layers.q.qubits=6"], marks)
    assert data["model"]["layers"][1]["qubits"] == 6
    assert marks.overridden[("model", "layers", 1, "qubits")] == "--set model.layers.q.qubits=6"
    with pytest.raises(SpecError) as e:
        apply_overrides(data, ["model.layers.qq.qubits=6"], marks)
    assert "no entry named 'qq' in model.layers" in e.value.issues[0].message
    assert e.value.issues[0].hint == "did you mean 'q'?"
