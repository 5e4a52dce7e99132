"""`layerforge generate` on tiny language-model runs: greedy decoding equals the model's argmax, seeds repeat,
top-k restricts the choice, short prompts are exact for causal models (and flagged for others), prompts
longer than the window slide; and `predict` on text covers the last partial window."""
from __future__ import annotations

import json

import pytest
import torch

import layerforge as lf
from layerforge.engine.evaluate import load_trained
from layerforge.engine.generate import generate, sample_next
from layerforge.errors import DataError, UsageError
from tests.helpers import run_cli

T = 16


def lm_spec(causal: bool) -> dict:
    attention = {"type": "sparse_attention", "window": 4, "num_heads": 2, "causal": causal}
    return {
        "name": "tiny_lm", "seed": 0,
        "model": {"input_shape": [T], "layers": [
            {"type": "embedding", "input_dim": 71, "output_dim": 16},
            {"type": "transformer_block", "ffn_dim": 32, "attention": attention},
            {"type": "dense", "units": 71},
        ]},
        "data": {"dataset": "shakespeare", "seq_len": T, "num_samples": 64, "val": 0.25},
        "train": {"epochs": 1, "batch_size": 16, "plots": False},
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("generate")
    return {causal: lf.train(lm_spec(causal), out=tmp / f"causal_{causal}").run_dir for causal in (True, False)}


def test_greedy_generation_takes_the_models_argmax_after_the_prompt(runs):
    result = generate(runs[True], "ROMEO", tokens=3, temperature=0)
    _, _, _, model, *_ = load_trained(runs[True])
    vocab = json.loads((runs[True] / "data.json").read_text())["meta"]["vocab"]
    text = "ROMEO"
    for _ in range(3):  # padded on the right: a causal model cannot see the padding
        ids = [vocab.index(c) for c in text] + [0] * (T - len(text))
        with torch.no_grad():
            text += vocab[int(model(torch.tensor([ids]))[0, len(text) - 1].argmax())]
    assert result.prompt + result.text == text and result.causal is True and not result.notes


def test_the_same_seed_repeats_and_top_k_one_is_greedy(runs):
    a = generate(runs[True], "The ", tokens=8, seed=3)
    assert lf.generate(runs[True], "The ", tokens=8, seed=3).text == a.text and len(a.text) == 8  # the facade
    assert generate(runs[True], "The ", tokens=8, top_k=1, seed=9).text == generate(runs[True], "The ", tokens=8,
                                                                                    temperature=0).text


def test_a_prompt_longer_than_the_window_slides(runs):
    result = generate(runs[True], "Full fathom five thy father lies;", tokens=5, temperature=0)
    assert len(result.text) == 5 and result.causal is None  # never padded


def test_a_model_that_reads_ahead_is_left_padded_with_a_note(runs):
    result = generate(runs[False], "ROMEO", tokens=2, seed=0)
    assert result.causal is False and "reads ahead" in result.notes[0]


def test_top_k_samples_only_among_the_k_most_likely():
    logits = torch.tensor([0.0, 5.0, 4.0, 1.0, 4.5])
    gen = torch.Generator().manual_seed(0)
    assert {sample_next(logits, 5.0, 2, gen) for _ in range(200)} == {1, 4}
    assert sample_next(logits, 0.0, None, gen) == 1


def test_generate_errors_are_clear(runs, tmp_path, capsys):
    with pytest.raises(DataError, match="not in the training vocabulary: '€'"):
        generate(runs[True], "ROMEO€", tokens=2)
    with pytest.raises(UsageError, match="prompt is empty"):
        generate(runs[True], "", tokens=2)
    r = run_cli(capsys, "generate", str(runs[True]), "--prompt", "A", "--tokens", "-1")
    assert r.code == 2
    r = run_cli(capsys, "generate", str(tmp_path / "nowhere"), "--prompt", "A")
    assert r.code == 2 and "no run directory" in r.err and "Traceback" not in r.err


def test_generate_cli_prints_the_prompt_the_text_and_the_seed(runs, capsys):
    r = run_cli(capsys, "generate", str(runs[True]), "--prompt", "KING", "--tokens", "8", "--seed", "5")
    assert r.code == 0 and r.out.startswith("KING") and "seed 5" in r.out
    assert r.out.startswith("KING" + generate(runs[True], "KING", tokens=8, seed=5).text)


def test_predict_on_text_covers_the_last_partial_window(runs, tmp_path):
    text = "Where should this music be? i' the air or the earth?"  # 52 characters: 3 windows of 16 and 4 more
    path = tmp_path / "lines.txt"
    path.write_text(text)
    result = lf.predict(runs[True], path)
    assert result.row_names == ["chars 0–15", "chars 16–31", "chars 32–47", "chars 36–51"]
    assert result.predictions.shape == (4, T)
    assert any("the text's last 4 characters are predicted too" in n for n in result.notes)
