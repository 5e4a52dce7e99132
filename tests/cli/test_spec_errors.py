"""Every class of spec error: a located one-screen message, a hint where one helps, exit code 2, no traceback."""
from __future__ import annotations

import pytest

from tests.helpers import run_cli, write_spec

GOOD_HEAD = """
name: t
model:
  input_shape: [8]
  layers:
"""

CASES = {
    "yaml_syntax": ("model:\n  input_shape: [8\n  layers: []\n", ["YAML", "spec.yaml:3"]),
    "duplicate_key": (GOOD_HEAD + "    - {type: dense, units: 4}\nname: again\n", ["duplicate key 'name'", "spec.yaml:6:1"]),
    "unknown_section": ("modle: {}\n" + GOOD_HEAD + "    - {type: dense, units: 4}\n", ["unknown key 'modle'", "did you mean 'model'"]),
    "unknown_layer_key": (GOOD_HEAD + "    - {type: dense, unit: 4}\n", ["unknown key 'unit'", "did you mean 'units'", "spec.yaml:5"]),
    "unknown_layer_type": (GOOD_HEAD + "    - {type: dnse, units: 4}\n", ["unknown layer type 'dnse'", "did you mean 'dense'"]),
    "bad_value_type": (GOOD_HEAD + "    - {type: dense, units: many}\n", ["model.layers[0].units", "valid integer", "'many'"]),
    "bad_value_range": (GOOD_HEAD + "    - {type: dense, units: 0}\n", ["greater than 0", "got 0"]),
    "missing_required": (GOOD_HEAD + "    - {type: dense}\n", ["missing required key 'units'"]),
    "unknown_activation": (GOOD_HEAD + "    - {type: dense, units: 3, activation: rleu}\n", ["unknown activation 'rleu'", "did you mean 'relu'"]),
    "unknown_input_name": (GOOD_HEAD + "    - {type: dense, units: 4, name: a}\n    - {type: dense, units: 4, inputs: [b]}\n",
                           ["unknown input 'b'", "model.layers[1].inputs[0]"]),
    "cycle": (GOOD_HEAD + "    - {type: dense, units: 4, name: a, inputs: [b]}\n    - {type: dense, units: 4, name: b, inputs: [a]}\n",
              ["form a cycle", "'a'", "'b'"]),
    "duplicate_layer_name": (GOOD_HEAD + "    - {type: dense, units: 4, name: a}\n    - {type: dense, units: 4, name: a}\n",
                             ["name 'a' is already used"]),
    "not_a_mapping": ("- just a list\n", ["a spec must be a mapping"]),
    "empty_file": ("", ["the file is empty"]),
    "too_large": (GOOD_HEAD.replace("[8]", "[1000000]") + "    - {type: dense, units: 100000000}\n",
                  ["fp32 parameters alone", "bytes", "more than this machine"]),
    # shape mismatches
    "lstm_on_image": ("model:\n  input_shape: [1, 8, 8]\n  layers:\n    - {type: lstm, units: 4}\n", ["lstm", "(1, 8, 8)"]),
    "conv2d_on_vector": (GOOD_HEAD + "    - {type: conv2d, filters: 4, kernel_size: 3}\n", ["conv2d", "(8,)"]),
    "add_mismatch": (GOOD_HEAD + "    - {type: dense, units: 4, name: a, inputs: [input]}\n"
                     "    - {type: dense, units: 5, name: b, inputs: [input]}\n    - {type: add, inputs: [a, b]}\n", ["(4,)", "(5,)"]),
    "concat_mismatch": ("model:\n  input_shape: {a: [3, 4], b: [5, 6]}\n  layers:\n    - {type: concat, inputs: [a, b]}\n",
                        ["concat", "(3, 4)", "(5, 6)"]),
    "heads_do_not_divide": ("model:\n  input_shape: [10, 30]\n  layers:\n    - {type: multi_head_attention, num_heads: 4}\n",
                            ["30", "4"]),
    "reshape_sizes": (GOOD_HEAD + "    - {type: reshape, target_shape: [3, 3]}\n", ["reshape", "8", "9"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_validate_reports_located_error_and_exits_2(case, tmp_path, capsys):
    text, expected = CASES[case]
    path = write_spec(tmp_path, text)
    r = run_cli(capsys, "validate", str(path))
    assert r.code == 2, r.err
    assert "Traceback" not in r.err + r.out
    for fragment in expected:
        assert fragment in r.err, f"{fragment!r} not in:\n{r.err}"
    assert len(r.err.splitlines()) < 40  # one screen


def test_all_independent_errors_are_reported_at_once(tmp_path, capsys):
    path = write_spec(tmp_path, GOOD_HEAD + "    - {type: dense, unit: 4}\n    - {type: dnse, units: 4}\n    - {type: dense, units: -1}\n")
    r = run_cli(capsys, "validate", str(path))
    assert r.code == 2 and "3 problems" in r.err
    assert all(s in r.err for s in ("spec.yaml:5", "spec.yaml:6", "spec.yaml:7"))
    assert "missing required key" not in r.err  # the misspelt 'unit' is reported once, with its fix


def test_error_from_an_override_names_the_override(tmp_path, capsys):
    path = write_spec(tmp_path, GOOD_HEAD + "    - {type: dense, units: 4}\n")
    r = run_cli(capsys, "validate", str(path), "--set", "model.layers.0.units=-2")
    assert r.code == 2 and "--set model.layers.0.units=-2" in r.err


def test_debug_shows_the_traceback(tmp_path, capsys):
    path = write_spec(tmp_path, GOOD_HEAD + "    - {type: dense}\n")
    from layerforge.errors import SpecError

    with pytest.raises(SpecError):
        run_cli(capsys, "--debug", "validate", str(path))


def test_missing_file_is_a_clean_error(tmp_path, capsys):
    r = run_cli(capsys, "validate", str(tmp_path / "nope.yaml"))
    assert r.code == 2 and "no such file" in r.err and "Traceback" not in r.err


def test_valid_spec_exits_0(tmp_path, capsys):
    path = write_spec(tmp_path, GOOD_HEAD + "    - {type: dense, units: 4}\n")
    r = run_cli(capsys, "validate", str(path))
    assert r.code == 0 and "valid" in r.out
