"""The search space: parsing with located errors, sampling, applying a sample (layer drops, ``when:``)."""
from __future__ import annotations

import copy

import pytest

import layerforge as lf
from layerforge.errors import SpecError
from layerforge.search.space import Space
from tests.search.conftest import iris_search

# The IRIS spec has 11 lines: search: is line 12, the first space entry line 15.
BAD_SPACE = """
search:
  objective: val_accuracy
  space:
    train.optimizer.lrr: {space: loguniform, lower: 1e-4, upper: 1e-2}
    model.layers.h9.units: {space: int, lower: 4, upper: 32}
    model.layers.drop.rate: {space: uniform, lower: 0.0, upper: 1.5}
    model.layers.h1.units: {space: uniform, lower: 4, upper: 32}
    model.layers.h2: {space: choice, categories: [{type: dense, unitz: 3}, null]}
    train.optimizer.momentum: {space: uniform, lower: 0.5, upper: 0.9, when: {train.optimizer.nam: sgd}}
    train.optimizer.name: {space: choice, categories: [adam, sgd]}
    train.optimizer.weight_decay: {space: uniform, lower: 0.0, upper: 0.1, when: {train.optimizer.name: rmsprop}}
"""


def _issues(path) -> dict[str, tuple]:
    spec, _ = lf.load_spec(path)
    with pytest.raises(SpecError) as e:
        Space.parse(spec)
    return {i.message: (i.line, i.column, i.hint) for i in e.value.issues}


def _find(issues: dict[str, tuple], *words: str) -> tuple:
    hits = [v for m, v in issues.items() if all(w in m for w in words)]
    assert len(hits) == 1, (words, list(issues))
    return hits[0]


def test_every_space_problem_is_reported_at_its_entry_with_a_fix(tmp_path):
    issues = _issues(iris_search(tmp_path, BAD_SPACE))
    assert len(issues) == 7, list(issues)
    assert _find(issues, "unknown path", "unknown key 'lrr'") == (15, 5, "did you mean 'lr'?")
    line, col, hint = _find(issues, "no entry named 'h9'")
    assert (line, col) == (16, 5) and "h1" in hint  # the layer names are listed
    line, _, hint = _find(issues, "1.5 does not fit model.layers[1].rate")  # the field's own range
    assert line == 17 and "lower/upper" in hint
    line, _, hint = _find(issues, "does not fit model.layers[0].units", "integer")  # a float aimed at an int field
    assert line == 18 and "space: int" in hint
    assert _find(issues, "model.layers[2].unitz", "unknown key")[::2] == (19, "did you mean 'units'?")
    line, col, hint = _find(issues, "when: refers to 'train.optimizer.nam'")
    assert line == 20 and col > 60 and hint == "did you mean 'train.optimizer.name'?"
    assert _find(issues, "never takes the value 'rmsprop'")[0] == 22


@pytest.mark.parametrize("entry, message", [
    ("{space: uniform, lower: 0.5, upper: 0.1}", "bad range: lower (0.5) must be below upper (0.1)"),
    ("{space: loguniform, lower: 0, upper: 0.1}", "loguniform needs lower > 0"),
    ("{space: int, lower: 1, upper: 8.5}", "space: int needs whole numbers, got upper 8.5"),
    ("{space: uniform, lower: 0, upper: 1, step: 0.3}", "is not a multiple of step"),
    ("{space: choice, categories: []}", "needs a non-empty 'categories'"),
    ("{space: choice, categories: [1, 1]}", "category 1 is listed twice"),
    ("{space: gaussian, lower: 0, upper: 1}", "Input should be 'loguniform', 'uniform', 'int' or 'choice'"),
])
def test_a_bad_range_or_kind_is_a_located_schema_error(tmp_path, entry, message):
    path = iris_search(tmp_path, f"search:\n  space:\n    model.layers.drop.rate: {entry}\n")
    with pytest.raises(SpecError) as e:
        lf.load_spec(path)
    (issue,) = e.value.issues
    assert message in issue.message and issue.line == 14, issue
    assert issue.path[:3] == ("search", "space", "model.layers.drop.rate")


def test_when_conditions_that_form_a_cycle_are_refused(tmp_path):
    path = iris_search(tmp_path, """
        search:
          space:
            model.layers.h1.units: {space: choice, categories: [4, 8], when: {model.layers.h2.units: 4}}
            model.layers.h2.units: {space: choice, categories: [4, 8], when: {model.layers.h1.units: 4}}
        """)
    spec, _ = lf.load_spec(path)
    with pytest.raises(SpecError, match="when: conditions form a cycle"):
        Space.parse(spec)


SPACE = """
search:
  space:
    train.optimizer.name: {space: choice, categories: [adam, sgd]}
    train.optimizer.momentum: {space: uniform, lower: 0.5, upper: 0.9, when: {train.optimizer.name: sgd}}
    model.layers.h1: {space: choice, categories: [{type: dense, units: 5, activation: tanh}, null]}
    model.layers.drop: {space: choice, categories: [{type: dropout, rate: 0.2}, null]}
    model.layers.h2.units: {space: int, lower: 2, upper: 6, step: 2}
"""


def test_a_sample_replaces_and_drops_layers_by_name_and_skips_unmet_conditions(tmp_path):
    import optuna

    spec, _ = lf.load_spec(iris_search(tmp_path, SPACE))
    space = Space.parse(spec)
    adam = space.sample(optuna.trial.FixedTrial({"train.optimizer.name": "adam", "model.layers.h1": None,
                                                 "model.layers.drop": None, "model.layers.h2.units": 4}))
    assert "train.optimizer.momentum" not in adam  # its when: does not hold
    raw = space.apply(adam)
    assert "search" not in raw
    assert [layer["name"] for layer in raw["model"]["layers"]] == ["h2", "out"]  # both dropped: names still address
    assert raw["model"]["layers"][0]["units"] == 4
    sgd = space.sample(optuna.trial.FixedTrial({"train.optimizer.name": "sgd", "train.optimizer.momentum": 0.7,
                                                "model.layers.h1": "{type: dense, units: 5, activation: tanh}",
                                                "model.layers.drop": None, "model.layers.h2.units": 6}))
    raw = space.apply(sgd)
    assert raw["train"]["optimizer"] == {"name": "sgd", "lr": 0.01, "momentum": 0.7}
    assert raw["model"]["layers"][0] == {"type": "dense", "units": 5, "activation": "tanh"}  # a whole layer
    assert [layer.get("name") for layer in raw["model"]["layers"]] == [None, "h2", "out"]
    assert space.base == spec.raw  # the base mapping itself is never changed


def test_marks_follow_a_dropped_layer_so_errors_point_at_the_right_line(tmp_path):
    spec, _ = lf.load_spec(iris_search(tmp_path, SPACE))
    space = Space.parse(spec)
    marks = copy.deepcopy(space.marks)
    space.apply({"model.layers.h1": None, "model.layers.drop": None, "model.layers.h2.units": 4}, marks,
                origin="search trial 7")
    assert marks.positions[("model", "layers", 0)] == spec.marks.positions[("model", "layers", 2)]  # h2 moved up
    assert marks.overridden == {("model", "layers", 0, "units"): "search trial 7: model.layers.h2.units=4"}


def test_a_dropped_layer_that_a_later_one_reads_makes_an_invalid_trial_not_a_crash(tmp_path):
    import optuna

    from layerforge.search.api import prepare

    path = iris_search(tmp_path, """
        search:
          space:
            model.layers.h1: {space: choice, categories: [{type: dense, name: h1, units: 4}, null]}
        """)
    text = path.read_text().replace("{type: dense, name: h2, units: 8, activation: relu}",
                                    "{type: dense, name: h2, units: 8, activation: relu, inputs: [h1]}")
    path.write_text(text)
    _, runner, _ = prepare(path, None, None, "s")
    outcome = runner.run(optuna.trial.FixedTrial({"model.layers.h1": None}))
    assert outcome.state == "pruned"
    assert outcome.reason.startswith("invalid: ") and "'h1'" in outcome.reason, outcome.reason
    assert not (tmp_path / "runs").exists()  # nothing trained, no run directory


def test_a_spec_with_a_search_section_still_trains_and_validates(tmp_path):
    spec, _ = lf.load_spec(iris_search(tmp_path, SPACE))
    assert spec.search is not None and spec.search.trials == 20
    from layerforge.spec.jsonschema import spec_json_schema

    assert "search" in spec_json_schema()["properties"]


def test_the_spec_package_imports_neither_optuna_nor_torch():
    import subprocess
    import sys

    probe = ("import sys, layerforge.spec.validate, layerforge.search.schema; "
             "print([m for m in ('optuna', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
