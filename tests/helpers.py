"""Small helpers shared by tests: run the CLI in-process and capture its output and exit code."""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(capsys, *argv: str) -> Result:
    from layerforge.cli.app import main

    code = 0
    try:
        main(list(argv))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    cap = capsys.readouterr()
    return Result(code, cap.out, cap.err)


def write_spec(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip("\n"))
    return p
