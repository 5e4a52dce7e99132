"""From a ``data:`` block to raw arrays: which reader or generator, which files, which tasks fit.

:func:`read_sources` returns the main source plus the optional ``val_path`` / ``test_path`` sources,
all as :class:`~layerforge.data.raw.RawData`, and what the source allows (tasks, default
standardisation, whether splits must keep order).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from . import builtin, synthetic
from .fileio import check_memory
from .fit import ModelFacts
from .images import read_image_folder
from .ragged import Tokenize, attach_npz_lengths, read_sequence_csv
from .raw import RawData, display
from .readers import detect_format, read_csv, read_npy, read_npz, read_text, require_file
from .schema import DataSpec
from .splits import split_order
from .text import Tokenizer, build_vocab, build_word_vocab, windows, words

GENERATED_BYTES_PER_STEP = 48  # the generators' working arrays, per sample and step (measured peak: 42, adding)
ALL_TASKS = ("classification", "regression", "sequence_classification", "sequence", "language_model")
DEFAULT_TEXT_SEQ_LEN = 64


@dataclass
class Sources:
    main: RawData
    val: RawData | None = None
    test: RawData | None = None
    kind: str = ""  # dataset name or file format
    tasks: tuple[str, ...] = ALL_TASKS  # tasks this source can produce (first = default)
    standardize: bool = True  # default for data.standardize
    contiguous: bool = False  # split in order (text windows), never shuffled across splits
    meta: dict[str, Any] = field(default_factory=dict)


def check_task(task: str | None, allowed: tuple[str, ...], where: str) -> str:
    """data.task if this source can produce it (default: the source's first task)."""
    if task is None:
        return allowed[0]
    if task not in allowed:
        raise DataError(f"{where}: data.task '{task}' does not fit this source, which gives: {', '.join(allowed)}",
                        hint=f"set data.task: {allowed[0]} (or remove data.task)")
    return task


def default_seq_len(ds: DataSpec, facts: ModelFacts, fallback: int) -> int:
    """data.seq_len, else the model's input_shape[0] (single input), else the source's default."""
    if ds.seq_len is not None:
        return ds.seq_len
    shapes = list(facts.inputs.values())
    return shapes[0][0] if len(shapes) == 1 and len(shapes[0]) >= 1 else fallback


def image_target(ds: DataSpec, facts: ModelFacts) -> tuple[tuple[int, int] | None, int | None]:
    """Image size and channels: data.image_size, else a [C, H, W] model input's."""
    shapes = list(facts.inputs.values())
    chw = shapes[0] if len(shapes) == 1 and len(shapes[0]) == 3 else None
    size = tuple(ds.image_size) if ds.image_size else (chw[1], chw[2]) if chw else None
    channels = chw[0] if chw and chw[0] in (1, 3, 4) else None
    return size, channels  # type: ignore[return-value]


def _text_sources(texts: list[tuple[str, str]], ds: DataSpec, facts: ModelFacts, kind: str) -> Sources:
    """Token windows from (text, where) pairs: main, then optional val/test texts. Characters: the vocabulary
    is every character of every text; words: the words of the training windows only (the validation and
    test text's own words become [UNK], as after Keras' ``adapt`` on the training data)."""
    seq_len = default_seq_len(ds, facts, DEFAULT_TEXT_SEQ_LEN)
    if ds.tokenizer == "word":
        tokens = [words(t, ds.text_standardize) for t, _ in texts]
        train = tokens[0][: _train_tokens(len(tokens[0]), seq_len, ds, texts[0][1])]
        tokenizer = Tokenizer("word", build_word_vocab(train, ds.max_tokens), ds.text_standardize)
        encoded = [tokenizer.ids(t) for t in tokens]
    else:
        tokenizer = Tokenizer("char", build_vocab(*(t for t, _ in texts)))
        encoded = [tokenizer.encode(text, where) for text, where in texts]
    vocab, unit = tokenizer.vocab, tokenizer.unit
    raws, count = [], 0
    for ids, (_, where) in zip(encoded, texts):
        count += len(ids)
        x, y = windows(ids, seq_len, where, unit)
        raws.append(RawData(x={"input": x}, y=y, where=where, default_task="language_model",
                            task_reason=f"a text corpus (next-{unit} prediction)", ids=True, vocab_size=len(vocab)))
    main = raws[0]
    main.class_names = vocab
    it = iter(raws[1:])
    val = next(it) if ds.val_path else None
    test = next(it) if ds.test_path else None
    return Sources(main, val, test, kind, ("language_model",), False, True,
                   {**tokenizer.meta(), "seq_len": seq_len, f"{unit}s": count})


def _train_tokens(n_tokens: int, seq_len: int, ds: DataSpec, where: str) -> int:
    """How many leading tokens of the main text the training windows cover (text splits keep their order)."""
    n = (n_tokens - 1) // seq_len
    if n < 1:
        return n_tokens  # too short for a window: windows() reports it
    _, parts = split_order(n, ds, 0, contiguous=True, generated=False, where=where)
    return len(parts["train"]) * seq_len + 1


def _word_rows(ds: DataSpec, seed: int, where: str) -> Tokenize:
    """Tokenize a CSV text column (data.tokenizer: word) with a vocabulary of the training rows' words:
    the rows the split will give to training (same seed, same rule), as Keras' ``adapt`` on them."""
    def tokenize(cells: list[str]) -> tuple[list[np.ndarray], dict[str, Any]]:
        toks = [words(c, ds.text_standardize) for c in cells]
        _, parts = split_order(len(toks), ds, seed, contiguous=False, generated=False, where=where)
        seen = [w for i in parts["train"] for w in toks[i]]
        tokenizer = Tokenizer("word", build_word_vocab(seen, ds.max_tokens), ds.text_standardize)
        return [tokenizer.ids(t) for t in toks], tokenizer.meta()
    return tokenize


def _generator(ds: DataSpec, seed: int, facts: ModelFacts, limit: int | None = None) -> Sources:
    name = ds.dataset
    assert name is not None
    gen = synthetic.GENERATORS[name]
    task = check_task(ds.task, gen.tasks, f"dataset '{name}'")
    seq_len = default_seq_len(ds, facts, gen.seq_len)
    n = ds.num_samples or gen.num_samples
    if limit is not None:
        n = min(n, limit)
    copy_len = ds.copy_len or 5
    noise = 0.1 if ds.noise is None else ds.noise
    where = f"dataset '{name}'"
    if name == "copy" and seq_len < 2 * copy_len + 1:
        raise DataError(f"{where}: seq_len {seq_len} is too short to copy {copy_len} symbols (needs ≥ {2 * copy_len + 1})",
                        hint=f"use seq_len (and model.input_shape[0]) ≥ {2 * copy_len + 1}, or a smaller copy_len")
    check_memory(n * seq_len * GENERATED_BYTES_PER_STEP, where, f"{n:,} generated sequences of {seq_len:,} steps",
                 "lower data.num_samples or data.seq_len")
    x, y = synthetic.generate(name, seed=seed, num_samples=n, seq_len=seq_len, task=task, noise=noise, copy_len=copy_len)
    raw = RawData(x={"input": x}, y=y, where=where, default_task=gen.tasks[0], task_reason=f"generator '{name}'")
    meta: dict[str, Any] = {"seq_len": seq_len, "num_generated": n, "generator_seed": seed}
    if name == "copy":
        raw.ids, raw.vocab_size = True, synthetic.COPY_VOCAB
        raw.class_names = ["blank", *map(str, range(1, synthetic.COPY_SYMBOLS + 1)), "delimiter"]
        meta.update(copy_len=copy_len, vocab_size=synthetic.COPY_VOCAB)
    if name == "sine":
        meta["noise"] = noise
    if name == "parity":
        raw.class_names = ["even", "odd"]
    return Sources(raw, kind=name, tasks=gen.tasks, standardize=False, meta=meta)


def _resolve(base: Path, p: str) -> Path:
    path = Path(p).expanduser()
    return path if path.is_absolute() else base / path


def read_file(path: Path, fmt: str, ds: DataSpec, facts: ModelFacts, base: Path, features: list[str] | None,
              target_path: Path | None = None, limit: int | None = None, tokenize: Tokenize | None = None) -> RawData:
    """One user file (main, val or test) in format ``fmt`` (not text; see :func:`read_sources`);
    ``tokenize``: how a CSV text column becomes word ids (data.tokenizer: word)."""
    where = display(path, base)
    if fmt == "csv" and ds.sequence_column is not None:
        shape = next(iter(facts.inputs.values()))
        return read_sequence_csv(path, where, ds.target, ds.sequence_column, ds.delimiter, shape[0],
                                 shape[1] if len(shape) == 2 else None, limit=limit, padding=ds.padding,
                                 tokenize=tokenize)
    if fmt == "npz" and ds.lengths is not None:
        raw = read_npz(path, where, list(facts.inputs), ds.target)
        attach_npz_lengths(raw, path, where, ds.lengths, ds.padding)
        return raw
    if ds.sequence_column is not None or ds.lengths is not None:
        key = "sequence_column" if ds.sequence_column is not None else "lengths"
        raise DataError(f"{where}: data.{key} applies to {'CSV' if key == 'sequence_column' else 'NPZ'} files, "
                        f"and this one is {fmt}", hint=f"remove data.{key}", path=("data", key))
    if fmt == "csv":
        return read_csv(path, where, ds.target, features, ds.delimiter, limit=limit)
    if fmt == "npz":
        return read_npz(path, where, list(facts.inputs), ds.target)
    if fmt == "npy":
        return read_npy(path, where, target_path, display(target_path, base) if target_path else None, limit=limit)
    if fmt == "images":
        if not path.is_dir():
            raise DataError(f"{where}: format images needs a folder with one sub-folder per class",
                            hint="point data.path at the folder", path=("data", "path"))
        size, channels = image_target(ds, facts)
        return read_image_folder(path, where, base, size, channels, limit=limit)
    raise AssertionError(fmt)


def read_sources(ds: DataSpec, seed: int, base: Path, facts: ModelFacts, limit: int | None = None) -> Sources:
    """Read every file (or generate) for the data block ``ds``. ``limit``: at most about that many samples
    per file where a format allows reading part of it (CSV rows, .npy rows, images per class,
    generated sequences), for validate's quick look."""
    if ds.dataset in synthetic.GENERATORS:
        return _generator(ds, seed, facts, limit)
    if ds.dataset == "shakespeare":
        text, files = builtin.load_shakespeare()
        src = _text_sources([(text, "dataset 'shakespeare'")], ds, facts, "shakespeare")
        src.meta["files"] = files
        return src
    if ds.dataset == "digits":
        return Sources(builtin.load_digits(), kind="digits", tasks=("classification",))
    if ds.dataset in builtin.TABLES:
        return Sources(builtin.load_table(ds.dataset), kind=ds.dataset, tasks=("classification",))

    assert ds.path is not None
    paths = {"path": _resolve(base, ds.path)}
    for key in ("val_path", "test_path"):
        if getattr(ds, key):
            paths[key] = _resolve(base, getattr(ds, key))
    target_path = _resolve(base, ds.target_path) if ds.target_path else None
    fmts = {}
    for key, p in paths.items():
        where = display(p, base)
        require_file(p, f"{where} (data.{key})", key=("data", key))
        fmts[key] = detect_format(p, where) if ds.format == "auto" else ds.format
    fmt = fmts["path"]
    if fmt == "text":
        texts = [(read_text(p, display(p, base)), display(p, base)) for p in paths.values()]
        src = _text_sources(texts, ds, facts, "text")
        src.meta["files"] = [str(p) for p in paths.values()]
        return src
    words_from = None
    if ds.tokenizer == "word":
        if fmt != "csv" or ds.sequence_column is None:
            raise DataError(f"{display(paths['path'], base)}: data.tokenizer: word reads text, and this file is {fmt}"
                            + (" without data.sequence_column" if fmt == "csv" else ""),
                            hint="give a .txt corpus (or format: text), or a CSV with its text column as "
                                 "data.sequence_column; or remove tokenizer", path=("data", "tokenizer"))
        words_from = _word_rows(ds, seed, display(paths["path"], base))
    if target_path is not None and fmt != "npy":
        raise DataError(f"{display(paths['path'], base)}: data.target_path is only for .npy inputs",
                        hint="for CSV name the label column with data.target; for NPZ store y in the archive")
    main = read_file(paths["path"], fmt, ds, facts, base, ds.features, target_path, limit, words_from)
    if words_from is not None:  # val/test files: the training vocabulary
        words_from = Tokenizer.from_meta(main.meta).tokenize_cells
    extra: dict[str, RawData] = {}
    for key in ("val_path", "test_path"):
        if key in paths:
            f = fmts[key]
            if f == "npy":
                raise DataError(f"{display(paths[key], base)}: a .npy file holds one array, so data.{key} has no targets",
                                hint="save the split as .npz with x and y: np.savez('val.npz', x=x, y=y)")
            extra[key] = read_file(paths[key], f, ds, facts, base, main.meta.get("features"), limit=limit,
                                   tokenize=words_from)
    tasks = {"csv": ("classification", "regression"), "images": ("classification",)}.get(fmt, ALL_TASKS)
    if ds.sequence_column is not None:
        tasks = ("sequence_classification", "regression")
    src = Sources(main, extra.get("val_path"), extra.get("test_path"), fmt, tasks,
                  meta={"files": {k: str(p) for k, p in paths.items()}})
    if main.default_task is not None and main.default_task in tasks:
        src.tasks = (main.default_task, *[t for t in tasks if t != main.default_task])
    return src
