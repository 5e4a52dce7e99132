"""data.tokenizer: word, Keras TextVectorization's rules: standardise (ASCII lowercase, ASCII punctuation
removed), split on whitespace, ids 0 = padding, 1 = [UNK], then words by count with Keras' tie-break; the
vocabulary travels in the run directory so predict, evaluate and generate tokenise alike.

Keras' TextVectorization itself needs TensorFlow even on the torch backend (its adapt and call run
tf.strings ops), which the dev extra does not install; so the vocabulary is checked against a hand-written
expectation and against Keras' own ranking code (``np.lexsort((tokens, counts))[::-1]`` in
keras/src/layers/preprocessing/index_lookup.py) run on the same counts."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

import layerforge as lf
from layerforge.data.text import Tokenizer, build_word_vocab, words
from layerforge.errors import DataError, SpecError
from tests.data.conftest import load_data, make_spec

CORPUS = "The cat sat.\tThe DOG sat!  A cat, a dog;\nthe end... Été été don't [UNK] ünk"


def test_words_are_lowercased_stripped_of_punctuation_and_split_on_whitespace():
    assert words(CORPUS) == ["the", "cat", "sat", "the", "dog", "sat", "a", "cat", "a", "dog", "the", "end",
                             "Été", "été", "dont", "unk", "ünk"]  # tf.strings.lower is ASCII-only: É stays
    assert words("Hi, you!", "lower") == ["hi,", "you!"]
    assert words("Hi, you!", "strip_punctuation") == ["Hi", "you"]
    assert words("Hi, you!", "none") == ["Hi,", "you!"]


def test_vocabulary_orders_words_by_count_then_as_keras_breaks_ties():
    toks = words(CORPUS)
    vocab = build_word_vocab(toks)
    # counts: the 3; cat, sat, a, dog 2; the rest 1. Ties: the later word in UTF-8 byte order first
    # (ü = C3 BC > é = C3 A9 > É = C3 89 > u = 75).
    assert vocab == ["", "[UNK]", "the", "sat", "dog", "cat", "a", "ünk", "été", "Été", "unk", "end", "dont"]
    counts = Counter(toks)
    tokens = np.array([w.encode() for w in counts], dtype=object)
    keras_order = np.lexsort((tokens, np.array(list(counts.values()))))[::-1]  # Keras' finalize_state
    assert vocab[2:] == [tokens[i].decode() for i in keras_order]
    assert build_word_vocab(toks, max_tokens=5) == ["", "[UNK]", "the", "sat", "dog"]


def test_unknown_words_become_unk_and_the_tokenizer_round_trips_through_meta():
    tok = Tokenizer("word", build_word_vocab(words("a b b c c c"), max_tokens=4))
    assert tok.vocab == ["", "[UNK]", "c", "b"]
    assert tok.encode("C b a zebra", "x").tolist() == [2, 3, 1, 1]
    back = Tokenizer.from_meta(tok.meta())
    assert back == tok and back.join([2, 3, 1]) == "c b [UNK]"
    assert Tokenizer.from_meta({"vocab": ["a", "b"]}).kind == "char"  # runs saved before word tokenizers


LM = [{"type": "embedding", "input_dim": 12, "output_dim": 4}, {"type": "gru", "units": 4, "return_sequences": True},
      {"type": "dense", "units": 12}]


def test_a_text_corpus_becomes_word_windows_with_a_training_only_vocabulary(tmp_path):
    text = " ".join(["one two three four"] * 5 + ["five six seven eight"] * 2)  # the last 8 words: validation
    (tmp_path / "c.txt").write_text(text)
    spec = make_spec({"path": "c.txt", "tokenizer": "word", "val": 0.2}, [4], LM)
    b = load_data(spec, tmp_path)
    assert b.meta["vocab"] == ["", "[UNK]", "two", "three", "one", "four", "five"]  # 'five' opens the last train window's target
    assert b.meta["tokenizer"] == "word" and b.meta["words"] == 28 and b.task == "language_model"
    assert b.train.x[0].tolist() == [4, 2, 3, 5] and b.train.y[0].tolist() == [2, 3, 5, 4]
    assert b.val.x[-1].tolist() == [6, 1, 1, 1]  # words 20–23: those the training text never had are [UNK]


@pytest.mark.parametrize("data, key, match", [
    ({"dataset": "digits", "tokenizer": "word"}, "tokenizer", "dataset 'digits' is not text"),
    ({"dataset": "shakespeare", "max_tokens": 100}, "max_tokens", "add tokenizer: word"),
    ({"dataset": "shakespeare", "text_standardize": "lower"}, "text_standardize", "add tokenizer: word"),
    ({"dataset": "shakespeare", "tokenizer": "word", "max_tokens": 2}, "max_tokens", "greater than or equal to 3"),
    ({"dataset": "shakespeare", "tokenizer": "words"}, "tokenizer", "'char' or 'word'"),
    ({"dataset": "shakespeare", "padding": "pre"}, "padding", "applies to variable-length sequences"),
])
def test_bad_tokenizer_and_padding_options_are_spec_errors_at_their_key(data, key, match):
    with pytest.raises(SpecError, match=match) as e:
        make_spec(data, [8], LM)
    assert [i.path for i in e.value.issues] == [("data", key)]


def test_word_tokenizer_on_a_csv_is_a_data_error_at_the_key(tmp_path):
    (tmp_path / "t.csv").write_text("a,y\n1,0\n2,1\n")
    with pytest.raises(DataError, match="tokenizer: word reads text") as e:
        load_data(make_spec({"path": "t.csv", "target": "y", "tokenizer": "word"}, [1]), tmp_path)
    assert e.value.path == ("data", "tokenizer")


def test_word_run_round_trips_through_predict_evaluate_and_generate(tmp_path):
    text = " ".join(["The cat sat on the mat."] * 12 + ["A dog ran."] * 4)
    (tmp_path / "c.txt").write_text(text)
    spec = {"seed": 0, "model": {"input_shape": [4], "layers": LM},
            "data": {"path": str(tmp_path / "c.txt"), "tokenizer": "word", "max_tokens": 12, "val": 0.2},
            "train": {"epochs": 1, "batch_size": 8, "device": "cpu", "plots": False}}
    run = lf.train(spec, out=tmp_path / "run").run_dir
    tokenizer = lf.load_run(run).tokenizer  # the saved vocabulary, for use from Python
    # the training windows hold only 'the cat sat on the mat' ('a dog ran' is in the validation tail)
    assert tokenizer.vocab == ["", "[UNK]", "the", "sat", "on", "cat", "mat"]
    assert tokenizer.encode("The mat, a zebra", "x").tolist() == [2, 6, 1, 1]
    (tmp_path / "new.txt").write_text("THE CAT, the zebra sat on")  # 'zebra' is not in the vocabulary: [UNK]
    pred = lf.predict(run, tmp_path / "new.txt")
    assert pred.row_names == ["words 0–3", "words 2–5"]  # 6 words: the last window overlaps (noted)
    ev = lf.evaluate(run, data=tmp_path / "c.txt")
    assert ev.samples == (len(words(text)) - 1) // 4
    gen = lf.generate(run, "the cat", tokens=6, seed=0)
    assert gen.unit == "word" and gen.text.startswith(" ") and len(gen.text.split()) == 6
    assert set(gen.text.split()) <= set(tokenizer.vocab)


TEXT_CLASSIFIER = [{"type": "embedding", "input_dim": 16, "output_dim": 4, "mask_zero": True},
                   {"type": "gru", "units": 4}, {"type": "dense", "units": 2}]


def write_reviews(path) -> list[str]:
    texts = ["Great film!", "Awful, awful plot.", "A great, great cast", "Boring and awful", "great fun",
             "What a bore", "Great!", "Dull and long and awful and slow"]
    path.write_text("review,label\n" + "".join(f'"{t}",{int("reat" in t)}\n' for t in texts))
    return texts


def test_a_csv_text_column_becomes_padded_word_ids_with_a_training_rows_vocabulary(tmp_path):
    write_reviews(tmp_path / "r.csv")
    spec = make_spec({"path": "r.csv", "sequence_column": "review", "target": "label", "tokenizer": "word",
                      "val": 0.25, "shuffle": False, "padding": "pre"}, [5], TEXT_CLASSIFIER)
    b = load_data(spec, tmp_path)
    vocab = b.meta["vocab"]
    assert vocab[:4] == ["", "[UNK]", "great", "awful"] and "slow" not in vocab  # rows 7–8 are validation
    assert b.task == "sequence_classification" and b.train.lengths.tolist() == [2, 3, 4, 3, 2, 3]
    assert b.train.x[0].tolist() == [0, 0, 0, vocab.index("great"), vocab.index("film")]  # padding: pre
    assert b.val.lengths.tolist() == [1, 5]  # 'dull and long and awful and slow' keeps its first 5 words
    assert b.val.x[1].tolist() == [1, vocab.index("and"), 1, vocab.index("and"), vocab.index("awful")]
    assert "1 text(s) longer than the model's 5 words keep their first 5 words" in b.meta["notes"]


def test_a_word_text_classifier_predicts_with_its_saved_vocabulary(tmp_path):
    write_reviews(tmp_path / "r.csv")
    spec = {"seed": 0, "model": {"input_shape": [8], "layers": TEXT_CLASSIFIER},
            "data": {"path": str(tmp_path / "r.csv"), "sequence_column": "review", "target": "label",
                     "tokenizer": "word", "val": 0.25},
            "train": {"epochs": 2, "batch_size": 4, "device": "cpu", "plots": False}}
    run = lf.train(spec, out=tmp_path / "run").run_dir
    (tmp_path / "new.csv").write_text("review\nGREAT!!! a zebra\n")
    pred = lf.predict(run, tmp_path / "new.csv")
    trained = lf.load_run(run)
    ids = torch.from_numpy(trained.tokenizer.encode("great a zebra", "x"))[None]  # the same words by hand
    assert pred.predictions.tolist() == trained(ids).argmax(-1).tolist()
    ev = lf.evaluate(run, data=tmp_path / "r.csv")
    assert ev.samples == 8
