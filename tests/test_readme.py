"""The README's two set-up commands are real: CI runs the test command, and the main job works from a fresh install."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_command(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- {marker} -->\s*```bash\n(.+?)\n```", text, re.S)
    assert m, f"README has no '{marker}' command block"
    return m.group(1).strip()


def test_ci_runs_the_readme_test_command():
    assert readme_command("test-command") in (ROOT / ".ci" / "run").read_text()


def test_main_job_uses_a_shipped_config():
    cmd = readme_command("main-job")
    config = re.search(r"layerforge train (\S+)", cmd)
    assert config and (ROOT / config.group(1)).is_file()


@pytest.mark.slow
def test_main_job_runs_from_a_fresh_install(tmp_path):
    """A copy of the repository, a new virtual environment, the README's main-job command as written."""
    work = tmp_path / "clone"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for rel in tracked:
        src = ROOT / rel
        if src.is_file():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, work / rel)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    env["MPLBACKEND"] = "Agg"
    cmd = readme_command("main-job")
    r = subprocess.run(["bash", "-c", cmd], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert list((work / "runs").rglob("metrics.jsonl")), "the main job wrote no run directory"


def _set_items(text: str) -> list[list[str]]:
    """Every code span or line of a document that passes --set items, as lists of items."""
    spans = re.findall(r"`([^`]*--set [^`]*)`", text.replace("\n", " ")) + re.findall(r"^layerforge .*--set .*$", text, re.M)
    return [re.findall(r"--set (\S+)", s) for s in spans if "key.path" not in s]


@pytest.mark.parametrize("doc", ["README.md", "docs/spec.md"])
def test_the_documented_set_examples_work_on_the_digits_cnn(doc, capsys):
    """The --set examples in the README and the spec docs, literally, on the config they are written for."""
    from tests.helpers import run_cli

    examples = _set_items((ROOT / doc).read_text())
    assert examples, f"{doc} shows no --set example"
    for items in examples:
        args = [a for item in items for a in ("--set", item)]
        r = run_cli(capsys, "validate", str(ROOT / "configs/cnn_digits.yaml"), "--no-data", *args)
        assert r.code == 0, (items, r.err)
