"""User layer types from a Python file (--plugins or `plugins:` in the spec) and from entry points."""
from __future__ import annotations

import sys
import textwrap

import pytest
import torch

import layerforge as lf
from layerforge import plugins
from layerforge.errors import PluginError
from layerforge.layers.registry import registry
from tests.helpers import run_cli, write_spec


def test_spec_plugins_key_loads_the_file_relative_to_the_spec(root, capsys):
    r = run_cli(capsys, "inspect", str(root / "docs/examples/plugin_model.yaml"), "--format", "json")
    assert r.code == 0, r.err
    import json

    data = json.loads(r.out)
    glu = data["layers"][0]
    assert glu["type"] == "gated_linear" and glu["params"] == 20 * 64 + 64
    assert glu["flops"] == 4 * 20 * 32 + 4 * 32


def test_plugin_layer_builds_and_runs_in_python(root):
    model = lf.build_model(root / "docs/examples/plugin_model.yaml")
    assert model(torch.randn(5, 20)).shape == (5, 3)


def test_plugins_option_on_the_command_line(tmp_path, capsys):
    plugin = tmp_path / "double.py"
    plugin.write_text(textwrap.dedent('''
        from pydantic import Field
        from torch import nn
        from layerforge.layers import LayerSpec, register

        class _Double(nn.Module):
            def forward(self, x):
                return 2 * x

        @register("double_it_cli", family="plugin")
        class DoubleIt(LayerSpec):
            """Doubles its input."""
            example = "- {type: double_it_cli}"
            example_inputs = [(3,)]
            def output_shape(self, in_shapes):
                return in_shapes[0]
            def build(self, in_shapes):
                return _Double()
    '''))
    spec = write_spec(tmp_path, "model:\n  input_shape: [4]\n  layers:\n    - {type: double_it_cli}\n")
    r = run_cli(capsys, "inspect", str(spec), "--plugins", str(plugin))
    assert r.code == 0, r.err
    assert "uncounted" in r.out  # no flops() → reported as uncounted, never as 0
    assert "double_it_cli" in registry()


def test_registering_a_type_twice_is_an_error(tmp_path):
    plugin = tmp_path / "dup.py"
    plugin.write_text("from layerforge.layers import register\nfrom layerforge.layers.dense import Dense\n"
                      "@register('dense')\nclass Dense(Dense):\n    '''x'''\n")
    with pytest.raises(PluginError, match="registered twice"):
        plugins.load_plugin_file(plugin)


def test_a_broken_plugin_is_a_clean_error(tmp_path, capsys):
    plugin = tmp_path / "broken.py"
    plugin.write_text("raise RuntimeError('boom')\n")
    spec = write_spec(tmp_path, "model:\n  input_shape: [4]\n  layers:\n    - {type: dense, units: 2}\n")
    r = run_cli(capsys, "validate", str(spec), "--plugins", str(plugin))
    assert r.code == 2 and "boom" in r.err and "broken.py" in r.err and "Traceback" not in r.err


def test_missing_plugin_file(tmp_path, capsys):
    spec = write_spec(tmp_path, "plugins: [nope.py]\nmodel:\n  input_shape: [4]\n  layers:\n    - {type: dense, units: 2}\n")
    r = run_cli(capsys, "validate", str(spec))
    assert r.code == 2 and "plugin file not found" in r.err


def test_entry_point_plugins_are_loaded(tmp_path, monkeypatch):
    pkg = tmp_path / "lf_ep_demo.py"
    pkg.write_text(textwrap.dedent('''
        from layerforge.layers import LayerSpec, register
        from torch import nn

        @register("ep_identity", family="plugin")
        class EpIdentity(LayerSpec):
            """Identity from an entry point."""
            def output_shape(self, in_shapes):
                return in_shapes[0]
            def build(self, in_shapes):
                return nn.Identity()
    '''))
    dist = tmp_path / "lf_ep_demo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lf-ep-demo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[layerforge.layers]\nep_identity = lf_ep_demo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_EP_LOADED", False)
    plugins.load_entry_points()
    assert "ep_identity" in registry()
    sys.modules.pop("lf_ep_demo", None)


def test_a_spec_loaded_with_plugins_keeps_them_when_passed_on(root):
    """lf.train(spec) re-enters the front door with a Spec: the --plugins files stay recorded."""
    from layerforge.build import load

    plugin = root / "docs/examples/gated_linear.py"
    spec = {"model": {"input_shape": [20], "layers": [{"type": "gated_linear", "units": 4}]}}
    first, _ = load(spec, plugins=[plugin])
    again, _ = load(first, overrides=["model.layers.0.units=8"])
    assert [f.path for f in again.plugin_files] == [plugin.resolve()]
    assert again.model.layers[0].units == 8


def test_get_layer_type_keeps_its_did_you_mean_promise():
    from layerforge.layers import get_layer_type

    assert get_layer_type("dense").type_name == "dense"
    with pytest.raises(KeyError, match="unknown layer type 'dnse'; did you mean 'dense'"):
        get_layer_type("dnse")
