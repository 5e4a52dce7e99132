"""Figures on a busy machine: the machine reference is the best of several rounds, a fraction of it is
never printed above 100 % (the report says the reference was disturbed, and by how much), timings that
did not settle and oversubscribed threads lead the report with a warning."""
from __future__ import annotations

import re
import threading

import pytest

from layerforge.analysis import machine as machine_mod
from layerforge.analysis.compare import profile_configs, trust_warnings
from layerforge.analysis.machine import Machine
from layerforge.analysis.verdict import fraction, verdict
from tests.analysis.conftest import FAST, MLP
from tests.helpers import write_spec


def _machine(**kw) -> Machine:
    base = dict(device="cpu", device_name="test", threads=2, matmul_dtype="fp32", matmul_size=256,
                matmul_gflops=4.2, copy_bytes=1, copy_gbps=1.0, balance=4.2, matmul_rounds=[4.2, 4.0, 3.9],
                copy_rounds=[1.0, 1.0, 1.0], cores_free=2.0)
    return Machine(**{**base, **kw})


def test_a_fraction_above_the_reference_says_it_was_disturbed_and_by_how_much():
    assert fraction(10.0, 40.0, "the matmul rate") == "25.0% of the matmul rate"
    text = fraction(22.88, 4.2, "the measured fp32 matmul rate")
    assert "%" not in text and "disturbed" in text and "5.4×" in text


def test_rounds_that_disagree_and_busy_cores_are_detected():
    assert _machine().settled and not _machine().oversubscribed()
    assert not _machine(matmul_rounds=[300.0, 4.2, 100.0]).settled
    assert _machine(cores_free=0.4).oversubscribed() and not _machine(threads=1, cores_free=0.4).oversubscribed()


def _percentages(text: str) -> list[float]:
    """The fractions printed (x % of something); not spreads (±x %) or differences (+x %, −x %), which a
    busy machine may legitimately push past 100."""
    return [float(x) for x in re.findall(r"(?<![±+\-−\d.])(\d+(?:\.\d+)?)\s?%", text)]


def test_a_disturbed_reference_prints_no_fraction_above_100_percent(tmp_path, capsys, monkeypatch):
    """Busy threads run while the machine's matmul rate is measured (and stop before the model is), so the
    reference is too low; nothing printed may exceed 100 %."""
    import torch

    from layerforge.cli.profile_cmd import _render

    monkeypatch.setattr(machine_mod, "_CACHE", {})
    stop = threading.Event()
    busy: list[threading.Thread] = []

    def spin() -> None:
        a = torch.randn(512, 512)
        while not stop.is_set():
            a @ a

    def on_event(msg: str) -> None:
        if msg.startswith("measuring the machine"):
            busy.extend(threading.Thread(target=spin, daemon=True) for _ in range(4))
            for t in busy:
                t.start()
        elif busy and not stop.is_set():
            stop.set()
            for t in busy:
                t.join()

    spec = write_spec(tmp_path, MLP)
    try:
        report = profile_configs([spec], settings={**FAST, "threads": 2, "batch_sizes": "256"}, quick=True,
                                 on_event=on_event)
    finally:
        stop.set()
    # The reference as if it had been disturbed far more than any busy thread manages: 1 MFLOP/s.
    report.machine.matmul_gflops = 1e-3
    report.configs[0].verdict = verdict(report.configs[0], report.machine)
    report.warnings = trust_warnings(report)
    capsys.readouterr()
    _render(report)
    out = capsys.readouterr().out
    assert "disturbed" in out
    assert all(p <= 100 for p in _percentages(out)), out


def test_warnings_lead_the_report(tmp_path, capsys):
    from layerforge.cli.profile_cmd import _render

    report = profile_configs([write_spec(tmp_path, MLP)], settings={**FAST, "batch_sizes": "2"}, quick=True)
    report.machine = _machine(cores_free=0.3, matmul_rounds=[4.2, 1.0, 2.0])
    report.warnings = trust_warnings(report)
    capsys.readouterr()
    _render(report)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("warning")
    assert any("--threads 1" in line for line in lines[:4]) and any("did not settle" in line for line in lines[:4])


@pytest.mark.parametrize("flag", ["--quick", "--thorough"])
def test_quick_and_thorough_are_presets_and_exclusive(flag):
    from layerforge.analysis.profile_schema import ProfileSpec
    from layerforge.analysis.run import resolve_settings
    from layerforge.errors import UsageError

    s = resolve_settings(ProfileSpec(), {}, quick=flag == "--quick", thorough=flag == "--thorough")
    assert (s.min_run_time < ProfileSpec().min_run_time) == (flag == "--quick")
    with pytest.raises(UsageError):
        resolve_settings(ProfileSpec(), {}, quick=True, thorough=True)
