"""Reusable blocks: `- {block: NAME, repeat: N}` expands to the block's layers with local names
(`enc.3.attn`), wires `input` and local references per repetition, keeps nested state_dict keys, follows
`--set` on repeat, and locates errors at the block's definition naming the expanded layer."""
from __future__ import annotations

import pytest
import torch

import layerforge as lf
from layerforge.errors import SpecError
from layerforge.spec.jsonschema import spec_json_schema
from tests.helpers import run_cli, write_spec

SPEC = """
model:
  input_shape: [6, 4]
  blocks:
    res:
      repeat: 2
      layers:
        - {type: layernorm, name: norm}
        - {type: dense, units: 4}
        - {type: add, name: sum, inputs: [input, dense_1]}
  layers:
    - {type: dense, units: 4}
    - {block: res, name: enc}
    - {type: dense, name: head, units: 2, inputs: [enc]}
  outputs: head
"""


def names(graph):
    return [n.name for n in graph.nodes]


def test_a_block_expands_into_locally_named_layers_wired_per_repetition(tmp_path):
    spec, graph = lf.load_spec(write_spec(tmp_path, SPEC))
    assert names(graph) == ["dense_1", "enc.0.norm", "enc.0.dense_1", "enc.0.sum", "enc.1.norm", "enc.1.dense_1",
                            "enc.1.sum", "head"]
    inputs = {n.name: n.inputs for n in graph.nodes}
    assert inputs["enc.0.norm"] == ["dense_1"]  # the first repetition reads the layer before the use
    assert inputs["enc.0.sum"] == ["dense_1", "enc.0.dense_1"]  # `input`: what flows into the repetition
    assert inputs["enc.1.sum"] == ["enc.0.sum", "enc.1.dense_1"]  # the next one reads the previous one's output
    assert inputs["head"] == ["enc.1.sum"]  # a use's name reads its last layer
    assert spec.raw["model"]["layers"][1] == {"block": "res", "name": "enc"}  # the saved spec is not expanded


def test_the_built_module_nests_block_layers_and_computes_the_repeated_residual(tmp_path):
    spec, graph = lf.load_spec(write_spec(tmp_path, SPEC))
    model = lf.build_model((spec, graph)).eval()
    assert "layers.enc.1.dense_1.weight" in model.state_dict() and "layers.dense_1.weight" in model.state_dict()
    layers = model.layers
    assert list(layers)[:3] == ["dense_1", "enc.0.norm", "enc.0.dense_1"] and len(layers) == 8
    x = torch.randn(3, 6, 4)
    h = layers["dense_1"](x)
    for k in range(2):
        h = h + layers[f"enc.{k}.dense_1"](layers[f"enc.{k}.norm"](h))
    assert torch.allclose(model(x), layers["head"](h), atol=1e-6)


def test_repeat_follows_set_on_the_definition_and_on_the_use(tmp_path):
    path = write_spec(tmp_path, SPEC)
    _, graph = lf.load_spec(path, ["model.blocks.res.repeat=3"])
    assert names(graph)[-2] == "enc.2.sum" and len(graph.nodes) == 11
    listed = write_spec(tmp_path, SPEC.replace("      repeat: 2\n      layers:\n", "      layers:\n"), "listed.yaml")
    _, graph = lf.load_spec(listed, ["model.layers.1.repeat=4"])
    assert names(graph)[-2] == "enc.3.sum"
    with pytest.raises(SpecError) as e:
        lf.load_spec(path, ["model.layers.1.repeat=4"])
    assert "repeat is given both here and in block 'res'" in e.value.issues[0].message


def test_an_error_inside_a_block_points_at_its_definition_and_names_the_expanded_layer(tmp_path):
    path = write_spec(tmp_path, SPEC.replace("{type: dense, units: 4}\n        - {type: add",
                                             "{type: dense, unit: 4}\n        - {type: add"))
    with pytest.raises(SpecError) as e:
        lf.load_spec(path)
    first, *others = e.value.issues  # once for the definition, not once per repetition
    assert (first.line, first.message, first.layer) == (8, "unknown key 'unit'",
                                                        "dense 'enc.0.dense_1' and 1 more repetition")
    assert not others
    assert first.path == ("model", "blocks", "res", "layers", 1, "unit") and first.hint == "did you mean 'units'?"


def test_a_shape_error_inside_a_block_is_located_at_the_definition(tmp_path, capsys):
    path = write_spec(tmp_path, SPEC.replace("{type: dense, units: 4}\n        - {type: add",
                                             "{type: dense, units: 5}\n        - {type: add"))
    r = run_cli(capsys, "validate", str(path))
    assert r.code == 2
    assert f"{path}:9:11 model.blocks.res.layers[2] (add 'enc.0.sum')" in r.err


@pytest.mark.parametrize("change, message", [
    (("{block: res, name: enc}", "{block: ress, name: enc}"), "unknown block 'ress'"),
    (("{block: res, name: enc}", "{block: res, name: enc, times: 2}"), "unknown key 'times' in a block use"),
    (("{block: res, name: enc}", "{block: res, name: head}"), "the name 'head' is already used"),
    (("{type: dense, units: 4}\n    - {block", "{type: dense, name: a.b, units: 4}\n    - {block"),
     "layer name 'a.b' contains '.'"),
    (("repeat: 2", "repeat: 0"), "repeat must be a whole number from 1 to 256, got 0"),
    (("{type: layernorm, name: norm}", "{type: layernorm, name: input}"), "'input' is reserved inside a block"),
])
def test_bad_block_uses_are_located_errors(tmp_path, change, message):
    with pytest.raises(SpecError) as e:
        lf.load_spec(write_spec(tmp_path, SPEC.replace(*change)))
    assert any(message in i.message for i in e.value.issues), [i.message for i in e.value.issues]
    assert all(i.line is not None for i in e.value.issues)


def test_block_input_resolves_to_an_unnamed_layer_as_the_graph_names_it(tmp_path):
    spec = SPEC.replace("- {type: dense, units: 4}\n    - {block", "- {type: dense, units: 4}\n    - {type: dense, units: 4}\n    - {block")
    _, graph = lf.load_spec(write_spec(tmp_path, spec))
    assert {n.name: n.inputs for n in graph.nodes}["enc.0.sum"] == ["dense_2", "enc.0.dense_1"]


def test_inspect_shows_expanded_names_and_the_schema_knows_blocks(tmp_path, capsys):
    r = run_cli(capsys, "inspect", str(write_spec(tmp_path, SPEC)), "--format", "json")
    import json

    assert [row["name"] for row in json.loads(r.out)["layers"]][1:4] == ["enc.0.norm", "enc.0.dense_1", "enc.0.sum"]
    schema = spec_json_schema()
    model = schema["$defs"]["ModelSpec"]["properties"]
    assert any(v.get("title") == "block use" for v in model["layers"]["items"]["oneOf"])
    assert "additionalProperties" in model["blocks"]
