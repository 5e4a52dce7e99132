"""`layerforge --help` (and every command's --help) starts without importing torch, numpy or matplotlib."""
from __future__ import annotations

import subprocess
import sys

import pytest

COMMANDS = ["", "train", "evaluate", "predict", "export", "runs", "search", "profile", "inspect", "validate", "layers",
            "schema"]

PROBE = """
import sys
from layerforge.cli.app import main
try:
    main({argv!r})
except SystemExit as e:
    assert e.code in (0, None), e.code
heavy = [m for m in ("torch", "numpy", "matplotlib") if m in sys.modules]
print("HEAVY=" + ",".join(heavy))
"""


@pytest.mark.parametrize("command", COMMANDS)
def test_help_does_not_import_torch(command):
    argv = ([command] if command else []) + ["--help"]
    r = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "HEAVY=\n" in r.stdout, r.stdout[-500:]
    assert "Usage" in r.stdout


def test_version():
    r = subprocess.run([sys.executable, "-m", "layerforge", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("layerforge ")
