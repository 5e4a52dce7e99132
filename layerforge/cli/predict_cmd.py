"""`layerforge predict`: apply a trained run to new inputs (its saved transform first); write CSV/NPY/NPZ."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .evaluate_cmd import RunArg, Which
from .options import JsonOpt, PluginsOpt, TrustPluginsOpt

SHOW_ROWS = 20


def predict(
    run_dir: RunArg,
    input_: Annotated[Path, typer.Option("--input", "-i", help="Inputs: CSV (the training feature columns), NPZ, NPY, "
                                         "text, an image or a folder of images.", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write predictions to .csv, .npy "
                                                   "(predictions, or probabilities with --probabilities) or .npz (both).",
                                                   show_default=False)] = None,
    probabilities: Annotated[bool, typer.Option("--probabilities", "-p", help="Also give class probabilities.")] = False,
    checkpoint: Annotated[Which, typer.Option("--checkpoint", help="best (falls back to last) or last.")] = Which.best,
    plugins: PluginsOpt = None,
    json_: JsonOpt = False,
    trust_plugins: TrustPluginsOpt = False,
) -> None:
    """Predict with a trained run: a table of the first rows, or every row to --output / --json. When the
    input holds labels too, they are shown beside the predictions, with the accuracy."""
    from .. import predict as lf_predict
    from .render import console, print_json, simple_table

    result = lf_predict(run_dir, input_, output=output, probabilities=probabilities, checkpoint=checkpoint.value,
                        plugins=plugins or [], trust_plugins=trust_plugins)
    if json_:
        print_json(result.to_dict(probabilities))
        return
    for note in result.notes:
        console.print(f"[dim]note: {note}[/]")
    n = len(result.row_names)
    flat = result.predictions.reshape(n, -1)
    true = result.targets.reshape(n, -1) if result.targets is not None else None
    names, true_names = result.predicted_names(), result.target_names()
    cols = ["row", "predicted"] + (["true", "✓"] if true is not None else [])
    probs = result.probabilities
    per_sample = probabilities and probs is not None and probs.ndim == (2 if result.kind == "class" else 1)
    all_probs = per_sample and result.kind == "class" and probs.shape[1] <= 4
    if all_probs:
        pnames = result.class_names or [str(i) for i in range(probs.shape[1])]
        cols += [f"p({c})" for c in pnames]
    elif per_sample:
        positive = result.class_names[1] if result.class_names and len(result.class_names) == 2 else "1"
        cols.append("probability" if result.kind == "class" else f"p({positive})")
    rows = []
    if result.lengths is not None:  # variable-length sequences: each row at its true length
        flat = [result.valid(result.predictions, i).reshape(-1) for i in range(n)]
        true = [result.valid(result.targets, i).reshape(-1) for i in range(n)] if true is not None else None
    for i in range(min(n, SHOW_ROWS)):
        row = [result.row_names[i], _pred_text(flat[i], result.kind, result.class_names, names[i] if names else None,
                                               result.text_unit)]
        if true is not None:
            row.append(_pred_text(true[i], result.kind, result.class_names, true_names[i] if true_names else None,
                                  result.text_unit))
            row.append("" if result.kind == "real" else ("✓" if (flat[i] == true[i]).all() else "✗"))
        if all_probs:
            row += [f"{p:.3f}" for p in probs[i]]
        elif per_sample:
            row.append(f"{float(probs[i].max() if result.kind == 'class' else probs[i]):.3f}")
        rows.append(row)
    console.print(f"[bold]predictions ({n:,} rows, {result.checkpoint} checkpoint)[/]")
    console.print(simple_table(None, cols, rows))
    if n > SHOW_ROWS:
        console.print(f"... {n - SHOW_ROWS:,} more rows" + ("" if output else " (use --output FILE to write them all)"))
    if result.accuracy is not None:
        scored = result.scored if result.scored is not None else result.targets.size
        hits = int(round(result.accuracy * scored))
        console.print(f"accuracy [bold]{result.accuracy:.4f}[/]: {hits:,} of {scored:,} predictions "
                      "match the input's labels" + (" (padded steps not counted)" if result.lengths is not None else ""))
    if result.output:
        console.print(f"wrote {result.output}", soft_wrap=True, markup=False)  # a path stays whole, to copy


def _pred_text(pred, kind: str, class_names: list[str] | None, name: str | None = None,
               text_unit: str | None = None) -> str:
    if name is not None:
        return f"{name} ({int(pred[0])})" if str(name) != str(int(pred[0])) else str(name)
    if kind == "class" and len(pred) > 1 and class_names and text_unit is not None:
        text = ("" if text_unit == "character" else " ").join(class_names[int(v)] for v in pred)  # show the text
        return repr(text[:60] + ("…" if len(text) > 60 else ""))
    vals = [int(v) if kind != "real" else float(v) for v in pred]
    text = " ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in vals[:12])
    return text + (" …" if len(vals) > 12 else "")


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
