"""The data: section's schema: every field documented, bad values are located SpecErrors with a fix."""
from __future__ import annotations

import pytest

import layerforge as lf
from layerforge.data.schema import DATASETS, DataSpec
from layerforge.errors import SpecError

MODEL = {"input_shape": [4], "layers": [{"type": "dense", "units": 3}]}


def issues_for(data: dict) -> str:
    with pytest.raises(SpecError) as err:
        lf.spec_from_dict({"model": MODEL, "data": data})
    return str(err.value)


def test_every_field_has_a_description():
    for name, f in DataSpec.model_fields.items():
        assert f.description, f"data.{name} has no description"


def test_schema_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, layerforge.data.schema, layerforge.data; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("data,expect", [
    ({"dataset": "digts"}, "unknown dataset 'digts'; did you mean 'digits'?"),
    ({"dataset": "shakespear"}, "did you mean 'shakespeare'?"),
    ({}, "give exactly one of 'dataset'"),
    ({"dataset": "iris", "path": "x.csv"}, "not both"),
    ({"dataset": "iris", "val": 1.5}, "must be a fraction in [0, 1)"),
    ({"dataset": "iris", "val": 0.6, "test": 0.5}, "val + test must leave samples for training"),
    ({"path": "a.csv", "val": 0.2, "val_path": "v.csv"}, "either 'val' (a fraction) or 'val_path'"),
    ({"path": "a.csv", "test": 0.2, "test_path": "t.csv"}, "either 'test' (a fraction) or 'test_path'"),
    ({"dataset": "iris", "val_path": "v.csv"}, "apply to 'path' only"),
    ({"dataset": "iris", "standardise": True}, "unknown key 'standardise'"),
    ({"dataset": "iris", "task": "regresion"}, "data.task"),
    ({"path": "a.csv", "format": "parquet"}, "data.format"),
    ({"path": "a.csv", "image_size": [8]}, "must be [height, width]"),
    ({"dataset": "sine", "noise": -1}, "must be ≥ 0"),
    ({"path": "a.csv", "delimiter": ";;"}, "single character"),
])
def test_bad_data_blocks_are_spec_errors_with_a_fix(data, expect):
    assert expect in issues_for(data)


def test_unknown_key_suggests_the_right_one():
    assert "did you mean 'standardize'?" in issues_for({"dataset": "iris", "standardise": True})


def test_val_defaults_to_0_2_or_0_with_a_val_path():
    assert DataSpec(dataset="iris").val_fraction == 0.2
    assert DataSpec(path="a.csv", val_path="v.csv").val_fraction == 0.0
    assert DataSpec(dataset="iris", val=0).val_fraction == 0.0


def test_every_built_in_dataset_and_key_is_documented(root):
    text = (root / "docs" / "data.md").read_text()
    for name in DATASETS:
        assert f"dataset: {name}" in text, f"docs/data.md has no example for dataset '{name}'"
    rows = [line.split("|")[1] for line in text.split("## Keys")[1].split("##")[0].splitlines() if line.startswith("| `")]
    for key in DataSpec.model_fields:
        assert any(f"`{key}`" in r for r in rows), f"docs/data.md's key table lacks '{key}'"


def test_dataset_tasks_match_what_each_source_produces():
    """validate guesses the head from DATASET_TASKS; the generators and readers must agree with it."""
    from layerforge.data import builtin, synthetic
    from layerforge.data.schema import DATASET_TASKS

    assert set(DATASET_TASKS) == set(DATASETS)
    for name, gen in synthetic.GENERATORS.items():
        assert DATASET_TASKS[name] == gen.tasks[0], name
    for name in [*builtin.TABLES, "digits"]:
        assert DATASET_TASKS[name] == "classification", name
    assert DATASET_TASKS["shakespeare"] == "language_model"
