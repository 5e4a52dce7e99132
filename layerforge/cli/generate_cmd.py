"""`layerforge generate`: continue a prompt with a trained (character or word) language model."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from .evaluate_cmd import RunArg, Which
from .options import JsonOpt, PluginsOpt


def generate(
    run_dir: RunArg,
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The text to continue (characters or words of the training "
                                        "text; shorter than the model's window is fine).", show_default=False)],
    tokens: Annotated[int, typer.Option("--tokens", "-n", min=0, help="How many tokens (characters, or words) to generate.")] = 200,
    temperature: Annotated[float, typer.Option("--temperature", "-t", min=0.0, help="Sampling temperature: lower is "
                                               "more conservative, 0 always takes the most likely token.")] = 1.0,
    top_k: Annotated[Optional[int], typer.Option("--top-k", "-k", min=1, help="Sample only among the k most likely "
                                                 "tokens.", show_default=False)] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed (default: a fresh one, printed so the "
                                                "text can be repeated).", show_default=False)] = None,
    checkpoint: Annotated[Which, typer.Option("--checkpoint", help="best (falls back to last) or last.")] = Which.best,
    plugins: PluginsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Generate text from a language-model run (e.g. configs/char_sparse_shakespeare.yaml)."""
    from .. import generate as lf_generate
    from .render import console, print_json

    result = lf_generate(run_dir, prompt, tokens=tokens, temperature=temperature, top_k=top_k, seed=seed,
                         checkpoint=checkpoint.value, plugins=plugins or [])
    if json_:
        print_json(result.to_dict())
        return
    for note in result.notes:
        console.print(f"note: {note}", style="dim", markup=False)
    console.print(result.prompt, style="bold", end="", markup=False, soft_wrap=True)  # the text as it is,
    console.print(result.text, markup=False, soft_wrap=True)  # never re-wrapped to the terminal's width
    k = f", top-k {result.top_k}" if result.top_k else ""
    console.print(f"({result.tokens} {result.unit}s, temperature {result.temperature:g}{k}, seed {result.seed}, "
                  f"{result.checkpoint} checkpoint)", style="dim", markup=False)


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
