"""`layerforge export`: a trained run to ONNX, pt2 (torch.export) or safetensors, checked against PyTorch."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .evaluate_cmd import RunArg, Which
from .options import JsonOpt, PluginsOpt


class Format(str, Enum):
    onnx = "onnx"
    pt2 = "pt2"
    safetensors = "safetensors"


def export(
    run_dir: RunArg,
    format_: Annotated[Format, typer.Option("--format", "-f", help="onnx, pt2 (torch.export) or "
                                            "safetensors (weights + metadata).")] = Format.onnx,
    checkpoint: Annotated[Which, typer.Option("--checkpoint", help="best (falls back to last) or last.")] = Which.best,
    opset: Annotated[Optional[int], typer.Option("--opset", help="ONNX opset version (default: the exporter's "
                                                 "choice).", show_default=False)] = None,
    dynamic_batch: Annotated[bool, typer.Option("--dynamic-batch/--static-batch",
                                                help="Any batch size, or one fixed size (--batch-size).")] = True,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="The fixed batch size of a "
                                                      "--static-batch export (default 1).", show_default=False)] = None,
    include_transform: Annotated[bool, typer.Option(
        "--include-transform/--no-include-transform",
        help="Standardise inputs inside the exported graph (it takes raw inputs like 'layerforge predict'); "
             "the transform is in the metadata either way.")] = True,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="The file to write (default: "
                                                "RUN_DIR/export/model.<format>).", show_default=False)] = None,
    tolerance: Annotated[float, typer.Option("--tolerance", help="Largest accepted difference from PyTorch, "
                                             "relative to the outputs' scale.")] = 1e-4,
    plugins: PluginsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Export a trained run, then check the file in its runtime on real validation batches against PyTorch."""
    from ..export import export_run
    from .render import print_json

    result = export_run(run_dir, format_.value, checkpoint=checkpoint.value, opset=opset, dynamic_batch=dynamic_batch,
                        batch_size=batch_size, include_transform=include_transform, out=out, tolerance=tolerance,
                        plugins=plugins or [])
    if json_:
        print_json(result.to_dict())
        return
    _show(result)


def _shape(entry: dict) -> str:
    return f"{entry['name']} [{', '.join(str(d) for d in entry['shape'])}]" + (f" {entry['dtype']}" if "dtype" in entry else "")


def _show(result) -> None:
    from rich.markup import escape

    from ..text import human_bytes
    from .render import console

    c = result.check
    epoch = f", epoch {result.epoch}" if result.epoch is not None else ""
    opset = f", opset {result.opset}" if result.opset is not None else ""
    console.print(f"[bold green]exported[/] {escape(str(result.path))} ({result.format}{opset}, "
                  f"{human_bytes(result.bytes)}; {result.checkpoint} checkpoint{epoch}) in {result.time_s:.1f}s")
    ins = ", ".join(_shape(i) for i in result.inputs)
    outs = ", ".join(_shape(o) for o in result.outputs)
    takes = "raw inputs (standardisation inside)" if result.include_transform else "standardised inputs"
    console.print(f"  {escape(ins)} → {escape(outs)}; takes {takes}")
    if result.labels:
        shown = ", ".join(result.labels[:10]) + (f", … ({len(result.labels)})" if len(result.labels) > 10 else "")
        console.print(f"  labels (in the metadata): {escape(shown)}")
    console.print(f"  checked in {c.runtime} on {c.samples} samples of the {c.source} ({c.batches} batches): "
                  f"max |{result.format} − torch| = {c.max_abs_diff:.3g} (limit {c.limit:.3g})")
    for note in result.notes:
        console.print(f"  [dim]note: {escape(note)}[/]")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
