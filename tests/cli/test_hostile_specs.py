"""Hostile or unlucky specs, by class: every one is a located error with exit code 2 and no traceback, found
before anything large is built, and whatever `validate` accepts builds (issue 12)."""
from __future__ import annotations

import time
import tracemalloc

import pytest

import layerforge as lf
from layerforge.errors import SpecError
from layerforge.spec.loader import load_yaml_text
from tests.helpers import run_cli, write_spec

HEAD = "model:\n  input_shape: [8]\n  layers:\n"
DENSE = "    - {type: dense, units: 2}\n"
LAUGHS = "".join(f"{c}: &{c} [" + ",".join([f"*{p}"] * 9 if p else ['"lol"'] * 9) + "]\n"
                 for p, c in zip(["", *"abcdefgh"], "abcdefghi"))

# case → (spec text, fragments the error names, line:col)
CASES = {
    # YAML the loader must turn into its own located error
    "bad_int_tag": ("seed: !!int abc\n" + HEAD + DENSE, ["'abc' is not a valid int"], "1:7"),
    "bad_bool_tag": ("seed: !!bool maybe\n" + HEAD + DENSE, ["'maybe' is not a valid bool"], "1:7"),
    "map_tag_on_list": ("seed: !!map [1]\n" + HEAD + DENSE, ["expected a mapping"], "1:7"),
    "bad_timestamp_tag": ("name: !!timestamp 2023-02-30\n" + HEAD + DENSE, ["not a valid timestamp"], "1:7"),
    "huge_integer_literal": ("seed: " + "9" * 5000 + "\n" + HEAD + DENSE, ["not a valid int"], "1:7"),
    "mapping_as_key": ("{a: 1}: 2\n" + HEAD + DENSE, ["a key must be a plain value"], "1:1"),
    "sequence_as_key": ("? [a, b]\n: 3\n" + HEAD + DENSE, ["a key must be a plain value"], "1:3"),
    "nul_character": ("name: a\x00b\n" + HEAD + DENSE, ["U+0000 (NUL)"], "1:8"),
    "escape_character": (HEAD + "    - {type: dense, units: 2}\x1b\n", ["U+001B (ESC)"], "4:30"),
    "recursive_alias": ("a: &x [*x]\n" + HEAD + DENSE, ["recursive alias"], "1:8"),
    "deep_flow_nesting": ("a: " + "[" * 5000 + "]" * 5000 + "\n" + HEAD + DENSE, ["nest"], "1:"),
    "deep_block_nesting": ("a:\n" + "".join("  " * i + "b:\n" for i in range(1, 200)) + HEAD + DENSE,
                           ["nested more than 64 levels"], ""),
    "billion_laughs": (LAUGHS + HEAD + DENSE, ["more than 100,000 values"], "6:8"),
    "deep_alias_chain": ("a: &a " + "[" * 40 + "1" + "]" * 40 + "\nb: &b " + "[" * 30 + "*a" + "]" * 30 + "\n"
                         + HEAD + DENSE, ["more than 64 levels"], "2:"),
    # sizes: bounded before anything is built
    "units_past_int64": (HEAD + "    - {type: dense, units: 9223372036854775808}\n", ["beyond the largest"], "4:21"),
    "units_2_62": (HEAD + "    - {type: dense, units: 4611686018427387904}\n", ["beyond the largest"], "4:21"),
    "input_shape_entry": ("model:\n  input_shape: [9223372036854775808]\n  layers:\n" + DENSE, ["beyond the largest"], "2:17"),
    "embedding_input_dim": (HEAD + "    - {type: embedding, input_dim: 4611686018427387904, output_dim: 4}\n",
                            ["beyond the largest"], "4:25"),
    "max_len": ("model:\n  input_shape: [8, 4]\n  layers:\n"
                "    - {type: positional_embedding, max_len: 99999999999999}\n", ["beyond the largest"], "4:"),
    "conv_filters": ("model:\n  input_shape: [3, 8, 8]\n  layers:\n"
                     "    - {type: conv2d, filters: 4611686018427387904, kernel_size: 3}\n", ["beyond the largest"], "4:"),
    "conv_kernel": ("model:\n  input_shape: [3, 8, 8]\n  layers:\n"
                    "    - {type: conv2d, filters: 2, kernel_size: [3, 99999999999]}\n", ["beyond the largest"], "4:"),
    "gru_num_layers": ("model:\n  input_shape: [4, 2]\n  layers:\n    - {type: gru, units: 2, num_layers: 100000000}\n",
                       ["less than or equal to 256"], "4:29"),
    "heads": ("model:\n  input_shape: [4, 512]\n  layers:\n    - {type: multi_head_attention, num_heads: 512}\n",
              ["less than or equal to 256"], "4:"),
    "train_epochs": (HEAD + DENSE + "train: {epochs: 99999999999999999999}\n", ["train.epochs", "beyond the largest"], "5:"),
    "data_num_samples": (HEAD + DENSE + "data: {dataset: sine, num_samples: 99999999999999}\n", ["beyond the largest"], "5:"),
    "threads": (HEAD + DENSE + "train: {threads: 100000}\n", ["less than or equal to 1024"], "5:"),
    "weights_past_memory": ("model:\n  input_shape: [1000000]\n  layers:\n    - {type: dense, units: 100000000}\n",
                            ["needs more than", "fp32 parameters alone", "more than this machine"], "4:7"),
    "weights_past_int64": ("model:\n  input_shape: [2000000000]\n  layers:\n    - {type: dense, units: 2000000000}\n",
                           ["cannot be built", "too large"], "4:7"),
    "activation_past_memory": ("model:\n  input_shape: [3, 2000000000, 2000000000]\n  layers:\n"
                               "    - {type: conv2d, filters: 4, kernel_size: 3}\n", ["one sample's output"], "4:7"),
    # what validate accepts must build and train
    "layer_named_update": (HEAD + "    - {type: dense, units: 2, name: update}\n", ["'update' is taken by torch"], "4:31"),
    "layer_named_training": (HEAD + "    - {type: dense, units: 2, name: training}\n", ["'training' is taken"], "4:31"),
    "layer_named_cuda": (HEAD + "    - {type: dense, units: 2, name: cuda}\n", ["'cuda' is taken"], "4:31"),
    "layer_name_with_dot": (HEAD + "    - {type: dense, units: 2, name: a.b}\n", ["contains '.'", "use '_'"], "4:31"),
    "seed_past_2_63": ("seed: 18446744073709551616\n" + HEAD + DENSE, ["seed", "less than or equal to 9223372036854775807"], "1:1"),
    "negative_seed": ("seed: -1\n" + HEAD + DENSE, ["seed", "greater than or equal to 0"], "1:1"),
    "absolute_run_name": ("name: /tmp/evil\n" + HEAD + DENSE, ["cannot be a run name"], "1:1"),
    "run_name_with_dotdot": ("name: ../../evil\n" + HEAD + DENSE, ["cannot be a run name"], "1:1"),
    "run_name_dotdot_alone": ("name: '..'\n" + HEAD + DENSE, ["cannot be a run name"], "1:1"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_spec_is_a_located_error_with_exit_2(case, tmp_path, capsys):
    text, fragments, where = CASES[case]
    path = write_spec(tmp_path, text)
    r = run_cli(capsys, "validate", str(path), "--no-data")
    assert r.code == 2, r.out + r.err
    assert "Traceback" not in r.err + r.out
    assert f"spec.yaml:{where}" in r.err, r.err
    for fragment in fragments:
        assert fragment in r.err, f"{fragment!r} not in:\n{r.err}"


def test_a_date_like_name_is_the_text_it_is():
    """YAML 1.1 would read 2023-02-28 as a date (and fail on 2023-02-30); no spec value is a date."""
    data, _ = load_yaml_text("name: 2023-02-30\nother: 2023-02-28\n", "f.yaml")
    assert data == {"name": "2023-02-30", "other": "2023-02-28"}


def test_the_billion_laughs_file_is_refused_small_and_fast():
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match="more than 100,000 values"):
        load_yaml_text(LAUGHS, "laughs.yaml")
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(LAUGHS.encode()) < 500
    assert peak < 5 << 20, peak  # the expanded document would be ~10^9 values
    assert elapsed < 2.0  # milliseconds on a quiet machine; generous for a loaded CI box


def test_aliases_that_stay_small_still_work():
    data, _ = load_yaml_text("base: &b {type: dense, units: 4}\nlayers: [*b, *b, {<<: *b, units: 8}]\n", "f.yaml")
    assert data["layers"][2] == {"type": "dense", "units": 8}


def test_a_set_value_that_is_not_safe_yaml_stays_text():
    from layerforge.spec.loader import parse_override

    assert parse_override("name=!!int abc") == (("name",), "!!int abc")


def test_a_spec_larger_than_the_limit_is_refused_before_parsing(tmp_path):
    from layerforge.limits import MAX_SPEC_BYTES

    p = tmp_path / "big.yaml"
    p.write_text("# " + "x" * MAX_SPEC_BYTES + "\n")
    with pytest.raises(SpecError, match="more than a spec may be"):
        lf.load_spec(p)


def test_a_fifo_given_as_spec_is_refused_without_blocking(tmp_path):
    import os

    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    with pytest.raises(SpecError, match="FIFO"):
        lf.load_spec(fifo)


def test_any_layer_type_gets_the_integer_bound_for_free():
    """A plugin's plain `int` field is bounded by LayerSpec itself."""
    from pydantic import ValidationError

    from layerforge.layers.registry import LayerSpec

    class Plugin(LayerSpec):
        size: int

    Plugin(type="p", size=2**31 - 1)
    with pytest.raises(ValidationError, match="beyond the largest size"):
        Plugin(type="p", size=2**31)


def test_the_reserved_layer_names_are_those_torch_refuses():
    from torch import nn

    from layerforge.graph import reserved_names

    for name in ("update", "keys", "forward", "half", "training", "cuda"):
        assert name in reserved_names()
        with pytest.raises(KeyError):
            nn.ModuleDict({name: nn.Identity()})
    nn.ModuleDict({"dense_1": nn.Identity(), "logits": nn.Identity()})


def test_a_huge_layer_is_refused_while_counting_not_after(monkeypatch):
    """The parameter count stops at the memory limit: a 2·10^9 × 2·10^9 dense layer is never finished."""
    import layerforge.build as build

    monkeypatch.setattr(build, "_physical_memory", lambda: 1 << 30)
    spec = {"model": {"input_shape": [100000], "layers": [{"type": "dense", "units": 5000},
                                                          {"type": "dense", "units": 100000, "name": "big"}]}}
    with pytest.raises(SpecError) as e:
        lf.validate(spec)
    (issue,) = e.value.issues
    assert issue.path == ("model", "layers", 0) and "fp32 parameters alone" in issue.message


def test_validation_stays_linear_in_the_number_of_layers():
    """Layers that read a later layer (reverse order) used to make the topological sort quadratic."""
    n = 3000
    layers = [{"type": "dense", "units": 2, "name": f"l{i}", "inputs": [f"l{i + 1}" if i + 1 < n else "input"]}
              for i in range(n)]
    spec, graph = lf.build.load({"model": {"input_shape": [2], "layers": layers, "outputs": "l0"}})
    assert [node.name for node in graph.nodes][:2] == [f"l{n - 1}", f"l{n - 2}"]
