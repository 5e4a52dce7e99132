"""`layerforge profile` on the command line: tables, --json, sweeps, and exit code 2 without a traceback for
every bad value."""
from __future__ import annotations

import json

import pytest

from tests.analysis.conftest import MLP
from tests.helpers import run_cli, write_spec

FAST = ["--quick", "--threads", "1", "--device", "cpu"]


def test_profile_prints_tables_and_writes_json(tmp_path, capsys):
    spec = write_spec(tmp_path, MLP)
    out = tmp_path / "prof" / "p.json"
    r = run_cli(capsys, "profile", str(spec), *FAST, "-b", "4", "--json", str(out))
    assert r.code == 0, r.err
    for text in ("Conditions", "Machine", "Layers at batch 4", "dense_1 (dense)", "Latency and throughput",
                 "Memory", "measured", "analytic", "Verdict", "JSON written to"):
        assert text in r.out, text
    d = json.loads(out.read_text())
    assert d["conditions"]["batch_sizes"] == [4] and d["configs"][0]["name"] == "mlp"


def test_json_dash_prints_only_json(tmp_path, capsys):
    r = run_cli(capsys, "profile", str(write_spec(tmp_path, MLP)), *FAST, "-b", "2", "--mode", "inference",
                "--json", "-")
    assert r.code == 0, r.err
    d = json.loads(r.out)
    b = d["configs"][0]["batches"][0]
    assert b["train"] is None and b["inference"]["median"] > 0 and list(b["memory"]) == ["inference"]


def test_several_configs_print_a_side_by_side_table(tmp_path, capsys):
    a = write_spec(tmp_path, MLP, "a.yaml")
    b = write_spec(tmp_path, MLP.replace("name: mlp", "name: other"), "b.yaml")
    r = run_cli(capsys, "profile", str(a), str(b), *FAST, "-b", "2", "--no-per-layer")
    assert r.code == 0, r.err
    assert "Side by side" in r.out and "other" in r.out and "Layers at batch" not in r.out


def test_sweep_prints_its_table_and_writes_the_plot(tmp_path, capsys):
    png = tmp_path / "s.png"
    r = run_cli(capsys, "profile", str(write_spec(tmp_path, MLP)), *FAST, "-b", "2", "--sweep",
                "model.layers.0.units=4,8", "--plot", str(png))
    assert r.code == 0, r.err
    assert "Sweep of model.layers.0.units" in r.out and f"Plot written to {png}" in r.out and png.exists()


def test_seq_len_sweep_names_each_point(tmp_path, capsys):
    spec = write_spec(tmp_path, """
        name: seq
        model:
          input_shape: [4, 3]
          layers:
            - {type: gru, units: 4}
        """)
    r = run_cli(capsys, "profile", str(spec), *FAST, "-b", "1", "--sweep", "seq_len=4,8", "--plot", str(tmp_path / "p.png"))
    assert r.code == 0, r.err
    assert "seq [seq_len=4]:" in r.out and "seq [seq_len=8]:" in r.out and "model.input_shape.0" in r.out


def test_uncounted_layers_say_so_in_the_table(tmp_path, capsys, uncounted_layer):
    spec = write_spec(tmp_path, f"""
        model:
          input_shape: [6]
          layers:
            - {{type: {uncounted_layer}}}
        """)
    r = run_cli(capsys, "profile", str(spec), *FAST, "-b", "2")
    assert r.code == 0, r.err
    assert "uncounted" in r.out


@pytest.mark.parametrize("args, message", [
    (["--batch-sizes", "1,x"], "batch-sizes"),
    (["--batch-sizes", "0"], "batch-sizes"),
    (["--mode", "fast"], "mode"),
    (["--dtype", "fp8"], "dtype"),
    (["--dtype", "fp16"], "fp16"),
    (["--threads", "0"], "threads"),
    (["--min-run-time", "0"], "min-run-time"),
    (["--sweep", "units"], "sweep"),
    (["--sweep", "batch_size=1,two"], "batch_size"),
    (["--sweep", "model.layers.0.units=4,4"], "repeats"),
    (["--sweep", "model.layers.9.units=4"], "--sweep model.layers.9.units=4"),
    (["--sweep", "model.layers.0.units=4,-1"], "greater than 0"),
    (["--sweep", "seq_len=4,8"], "no sequence input"),
    (["--set", "profile.mode=fast"], "mode"),
])
def test_bad_values_exit_2_without_a_traceback(tmp_path, capsys, args, message):
    r = run_cli(capsys, "profile", str(write_spec(tmp_path, MLP)), *FAST, *args)
    assert r.code == 2, (r.out, r.err)
    assert "Traceback" not in r.err + r.out
    assert message in r.err


def test_json_path_that_is_a_directory_exits_2_before_profiling(tmp_path, capsys):
    r = run_cli(capsys, "profile", str(write_spec(tmp_path, MLP)), *FAST, "-b", "1", "--no-per-layer",
                "--json", str(tmp_path))
    assert r.code == 2 and "is a directory" in r.err and "Traceback" not in r.err


def test_missing_config_exits_2(tmp_path, capsys):
    r = run_cli(capsys, "profile", str(tmp_path / "nope.yaml"), *FAST)
    assert r.code == 2 and "no such file" in r.err and "Traceback" not in r.err
