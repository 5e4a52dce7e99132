"""A spiking model in the engine and the analysis: rate coding stays exactly resumable (its randomness is
torch's seeded, checkpointed generator), evaluate and predict repeat themselves, and the spike report
(firing rates, SOPs = spikes × fan-out, MACs, energy) adds up on a trained run, from Python and the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import layerforge as lf
from layerforge.analysis.spiking import E_AC_PJ, E_MAC_PJ, _Acc, _fanout, spike_report
from layerforge.engine.events import Callback
from tests.helpers import run_cli

SPEC = """\
# Run: layerforge train spec.yaml
name: snn_iris
seed: 3
model:
  input_shape: [4]
  layers:
    - {type: spike_encode, name: enc, mode: rate, steps: 4, normalize: sigmoid}
    - {type: dense, name: fc1, units: 16}
    - {type: lif, name: lif1, beta: 0.8}
    - {type: dense, name: fc2, units: 3}
    - {type: lif, name: out, output: membrane, reset: none}
    - {type: spike_readout, name: logits}
data: {dataset: iris, val: 0.2, test: 0.2}
train:
  epochs: 3
  batch_size: 16
  device: cpu
  plots: false
  optimizer: {name: adam, lr: 0.01}
"""


class StopAfter(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_start(self, info) -> None:
        self.stop = info.request_stop

    def on_epoch_end(self, record, improved) -> None:
        if record["epoch"] == self.epoch:
            self.stop()


def _weights(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / "checkpoints" / "last" / "model.safetensors"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("snn")
    spec = d / "spec.yaml"
    spec.write_text(SPEC)
    r = lf.train(spec, out=d / "full")
    assert r.status == "completed"
    return spec, d / "full"


def test_rate_coded_training_resumes_bit_for_bit(trained, tmp_path):
    spec, full = trained
    lf.train(spec, out=tmp_path / "part", callbacks=[StopAfter(1)])
    resumed = lf.train(resume=tmp_path / "part")
    assert resumed.status == "completed"
    a, b = _weights(full), _weights(tmp_path / "part")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    metrics = [json.loads(line) for line in (full / "metrics.jsonl").read_text().splitlines()]
    again = [json.loads(line) for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert [m["val_loss"] for m in metrics if "val_loss" in m] == [m["val_loss"] for m in again if "val_loss" in m]


def test_evaluate_and_predict_draw_the_same_spikes_every_time(trained):
    _, run = trained
    a, b = lf.evaluate(run, plot=False), lf.evaluate(run, plot=False)
    assert a.metrics == b.metrics
    x = torch.rand(20, 4)
    pa = lf.predict(run, x, probabilities=True)
    pb = lf.predict(run, x, probabilities=True)
    assert (pa.probabilities == pb.probabilities).all()


def test_spike_report_of_a_trained_run_adds_up(trained):
    _, run = trained
    rep = spike_report(run, samples=25)
    assert rep.measured and rep.samples == 25 and rep.split == "val" and "best checkpoint" in rep.weights
    rows = {r.layer: r for r in rep.layers}
    assert set(rows) == {"enc", "lif1"}  # the membrane readout emits no spikes
    assert 0 < rows["enc"].firing_rate < 1 and 0 < rows["lif1"].firing_rate < 1
    w = {r.layer: r for r in rep.weight_layers}
    assert w["fc1"].spike_input and w["fc1"].source == "enc" and w["fc2"].source == "lif1"
    # SOPs = spikes × fan-out, and a dense layer's fan-out is its units.
    assert w["fc1"].sops == pytest.approx(rows["enc"].spikes * 16)
    assert w["fc2"].sops == pytest.approx(rows["lif1"].spikes * 3)
    assert rows["enc"].firing_rate == pytest.approx(rows["enc"].spikes / (4 * 4))  # spikes / (steps · neurons)
    assert w["fc1"].ann_macs == 4 * 16 and w["fc2"].ann_macs == 16 * 3 and rep.ann_macs == 64 + 48
    assert rep.neuron_updates == 4 * (16 + 3)
    assert rep.snn_energy_uj == pytest.approx((rep.sops * E_AC_PJ + rep.neuron_updates * E_MAC_PJ) * 1e-6)
    assert rep.ann_energy_uj == pytest.approx(112 * E_MAC_PJ * 1e-6)


def test_direct_coding_makes_the_first_layer_multiply_at_every_step():
    spec = {"name": "d", "seed": 0, "model": {"input_shape": [5], "layers": [
        {"type": "spike_encode", "mode": "direct", "steps": 3}, {"type": "dense", "units": 4, "name": "fc"},
        {"type": "lif"}, {"type": "spike_readout"}]}}
    rep = spike_report(spec, data=torch.rand(10, 5))
    (row,) = rep.weight_layers
    assert row.spike_input is False and row.source is None and row.sops is None
    assert row.ann_macs == 20 and row.snn_macs == 3 * 20  # every MAC, T times
    assert rep.layers[0].layer == "lif_1" and rep.layers[0].feeds == []


def test_conv_fan_out_counts_the_kernel_taps_each_position_reaches():
    conv = torch.nn.Conv2d(1, 2, 3, padding=1)
    f = _fanout(conv, torch.zeros(1, 1, 4, 4), _Acc())[0]
    assert f[0, 0] == 2 * 4 and f[0, 1] == 2 * 6 and f[1, 1] == 2 * 9  # corner, edge, inside
    assert f.sum() == 2 * (2 + 3 + 3 + 2) ** 2  # Σ fan-out = the weights applied to real (unpadded) inputs


def test_inspect_data_on_a_run_directory_reports_measured_spikes(trained, capsys):
    _, run = trained
    r = run_cli(capsys, "inspect", str(run), "--data", "--samples", "16", "--format", "json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["spiking"]["measured"] and out["spiking"]["samples"] == 16
    assert [x["steps"] for x in out["layers"]][:3] == [4, 4, 4]
    r = run_cli(capsys, "inspect", str(run), "--data", "--samples", "16")
    assert r.code == 0 and "Firing rate" in r.out and "SOPs" in r.out and "memory traffic" in r.out


def test_inspect_data_on_a_run_directory_applies_set_to_its_spec_and_keeps_the_trained_weights(trained, capsys):
    _, run = trained
    r = run_cli(capsys, "inspect", str(run), "--data", "--samples", "8", "--set", "model.layers.enc.steps=6",
                "--format", "json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert [x["steps"] for x in out["layers"]][:3] == [6, 6, 6]
    assert out["spiking"]["layers"][0]["steps"] == 6 and "best checkpoint" in out["spiking"]["weights"]


@pytest.mark.cuda
def test_a_spiking_run_trains_evaluates_and_reports_on_cuda(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("device: cpu", "device: cuda"))
    assert lf.train(spec, out=tmp_path / "run").status == "completed"
    a = lf.evaluate(tmp_path / "run", plot=False, device="cuda")
    b = lf.evaluate(tmp_path / "run", plot=False, device="cuda")
    assert a.metrics == b.metrics
    rep = spike_report(tmp_path / "run", samples=16, device="cuda")
    assert rep.measured and 0 < rep.layers[0].firing_rate < 1 and rep.weight_layers[0].sops > 0


def test_profile_reports_the_spike_section(trained):
    spec, _ = trained
    rep = lf.profile(spec, quick=True, settings={"batch_sizes": [2], "per_layer": False, "mode": "inference"})
    d = rep.to_dict()["configs"][0]
    assert d["spiking"]["measured"] and d["spiking"]["layers"][0]["layer"] == "enc"
