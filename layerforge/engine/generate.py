"""Text generation from a trained language model: sample one token (character, or word with
``data.tokenizer: word``) at a time.

The model reads a fixed window of T tokens (its ``input_shape``) and predicts the next token at
every position. Each step feeds the last T tokens of prompt + generated text and samples from the
logits at the last real position. A prompt shorter than T: for a causal model (an LSTM, causal attention)
the prompt fills the first positions and the rest is padding that the prediction cannot see, which is
exactly the model's natural short input; the first step checks this by changing the padding. A model
that does read ahead (bidirectional, non-causal attention) gets the prompt at the end of the window,
padded on the left, and a note that its first predictions depend on the padding.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass
class GenerateResult:
    prompt: str
    text: str  # the generated continuation (without the prompt)
    tokens: int
    temperature: float
    top_k: int | None
    seed: int
    checkpoint: str
    causal: bool | None  # whether padding was invisible to the model (None: the prompt filled the window)
    notes: list[str] = field(default_factory=list)
    unit: str = "character"  # what one token is: character, or word (data.tokenizer: word)

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "text": self.text, "tokens": self.tokens, "temperature": self.temperature,
                "top_k": self.top_k, "seed": self.seed, "checkpoint": self.checkpoint, "causal": self.causal,
                "notes": list(self.notes), "unit": self.unit}


def sample_next(logits: "torch.Tensor", temperature: float, top_k: int | None, gen: "torch.Generator") -> int:
    """One id from (V,) logits: argmax at temperature 0, else softmax(logits / temperature) over the top k."""
    import torch

    if temperature == 0:
        return int(logits.argmax())
    scaled = logits.float() / temperature
    if top_k is not None and top_k < scaled.numel():
        kth = torch.topk(scaled, top_k).values[-1]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    return int(torch.multinomial(torch.softmax(scaled, -1), 1, generator=gen))


class _Window:
    """Turns the last T ids into the model's input (ids, or one-hot when it was trained so)."""

    def __init__(self, model: "nn.Module", seq_len: int, vocab_size: int, onehot: bool, transform: Any) -> None:
        self.model, self.t, self.v, self.onehot, self.transform = model, seq_len, vocab_size, onehot, transform

    def logits(self, ids: list[int], pad: int, left: bool) -> tuple["torch.Tensor", int]:
        """Logits (V,) after the last of ``ids`` (at most T), padded with ``pad`` on the right or the left."""
        import torch

        fill = [pad] * (self.t - len(ids))
        x = torch.tensor([fill + ids if left else ids + fill])  # (1, T)
        if self.onehot:
            x = torch.nn.functional.one_hot(x, self.v).float()  # (1, T, V)
        out = self.model(self.transform.apply(x))  # (1, T, V)
        pos = self.t - 1 if left else len(ids) - 1
        return out[0, pos], pos


def generate(run_dir: str | Path, prompt: str, *, tokens: int = 200, temperature: float = 1.0, top_k: int | None = None,
             seed: int | None = None, checkpoint: str = "best", device: str = "auto",
             plugins: list[str] | None = None) -> GenerateResult:
    """Continue ``prompt`` by ``tokens`` characters (or words) sampled from a trained language-model run (reopened
    through :func:`~layerforge.engine.evaluate.load_trained`, as ``predict`` does; ``plugins``: extra plugin
    files, the run's own are recorded in its spec.yaml). ``seed`` drives the sampling (default: a fresh one,
    returned in the result); any randomness inside the model is drawn from the spec's seed, as in ``predict``."""
    import torch

    from ..data import transform_from_state
    from ..data.text import Tokenizer
    from ..runtime import resolve_device, seeded
    from .evaluate import head_of, load_trained

    if tokens < 0 or temperature < 0 or (top_k is not None and top_k < 1):
        raise UsageError(f"bad sampling settings: tokens {tokens}, temperature {temperature}, top_k {top_k}",
                         hint="tokens ≥ 0, temperature ≥ 0 (0 = always the most likely character), top_k ≥ 1")
    if not prompt:
        raise UsageError("the prompt is empty", hint='give the text to continue, e.g. --prompt "ROMEO:"')
    run, spec, _graph, model, which, _epoch = load_trained(run_dir, checkpoint, plugins)
    meta = run.read_json("data.json").get("meta", {})
    vocab = meta.get("vocab")
    if meta.get("task") != "language_model" or not vocab:
        raise UsageError(f"{run.path} is not a language-model run (its task is {meta.get('task')!r})",
                         hint="generate continues text with a model trained on text (data.dataset: shakespeare "
                              "or a .txt file)")
    head = head_of(run)
    seq_len = int(meta.get("seq_len") or head.out_shape[0])
    if head.kind != "class" or len(head.out_shape) != 2 or head.out_shape[0] != seq_len or head.out_shape[1] < len(vocab):
        raise UsageError(f"the model's output {list(head.out_shape)} is not one logit per token per step "
                         f"([{seq_len}, {len(vocab)}])", hint="the last layer must be dense with units = the vocabulary size")
    # (more units than the vocabulary, e.g. units = max_tokens over a text with fewer words: those never win)
    dev = resolve_device(device)
    model.to(dev)
    onehot = "onehot" in dict(meta.get("input_encoding") or {}).values()
    window = _Window(model, seq_len, len(vocab), onehot, transform_from_state(run.load_transform()))
    tokenizer = Tokenizer.from_meta(meta)
    ids = [int(i) for i in tokenizer.encode(prompt, "the prompt")]
    if not ids:
        raise UsageError("the prompt holds no word once standardised", hint='give words to continue, e.g. --prompt "the king"')
    seed = int(torch.randint(0, 2**31 - 1, (1,))) if seed is None else seed
    gen = torch.Generator().manual_seed(seed)
    pad = vocab.index(" ") if tokenizer.kind == "char" and " " in vocab else 0  # words: the padding id
    causal, notes = None, []
    out: list[int] = []
    with torch.inference_mode(), seeded(spec.seed, dev):
        for _ in range(tokens):
            context = (ids + out)[-seq_len:]
            if len(context) < seq_len and causal is None:
                a, _ = window.logits(context, pad, left=False)
                b, _ = window.logits(context, (pad + 1) % len(vocab), left=False)
                causal = bool(torch.allclose(a, b, atol=1e-5))
                if not causal:
                    notes.append(f"the model reads ahead (changing the padding after the prompt changes its "
                                 f"prediction), so the prompt is left-padded; its first {seq_len - len(context)} "
                                 f"predictions also see padding: give a prompt of {seq_len} {tokenizer.unit}s to avoid it")
            logits, _ = window.logits(context, pad, left=not causal and len(context) < seq_len)
            out.append(sample_next(logits[: len(vocab)].cpu(), temperature, top_k, gen))
    text = tokenizer.join(out)
    if tokenizer.kind == "word" and out:
        text = " " + text  # words: separated by spaces, from the prompt too (prompt + text reads on)
    return GenerateResult(prompt, text, tokens, temperature, top_k, seed, which, causal, notes, tokenizer.unit)
