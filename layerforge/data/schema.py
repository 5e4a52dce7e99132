"""Schema of the spec's ``data:`` section (torch-free).

A ``data:`` block names either a built-in ``dataset`` or a ``path`` to the user's own file or folder,
the task, and how the samples are split. Everything else has a default that follows from the source
and the model (e.g. ``seq_len`` defaults to the model's ``input_shape[0]``); docs/data.md has an
example for each source.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationInfo, field_validator, model_validator

# Built-in datasets: name → (kind, one-line description). Kept here (torch-free) so the schema can
# validate names with a did-you-mean; layerforge.data.builtin implements them.
DATASETS: dict[str, str] = {
    "digits": "UCI handwritten digits: 1,797 images 1×8×8 (values 0–16), 10 classes",
    "iris": "UCI iris: 150 flowers × 4 measurements, 3 species",
    "wine": "UCI wine: 178 wines × 13 chemical measurements, 3 cultivars",
    "breast_cancer": "UCI breast cancer (Wisconsin diagnostic): 569 samples × 30 features, 2 classes",
    "shakespeare": "Two Shakespeare plays (Project Gutenberg) for character-level language modelling",
    "adding": "Adding problem: sum the two marked values of a (seq_len, 2) sequence (regression)",
    "copy": "Copy/memory task: reproduce the first copy_len symbols after a long blank delay",
    "sine": "Noisy sine-wave forecasting: predict the next clean value from a noisy window",
    "parity": "Parity: is the number of ones in a bit sequence odd? (sequence classification)",
}

# The task each built-in dataset gives by default (torch-free, so validate can check the train section
# against it; a test keeps it equal to what the readers and generators produce).
DATASET_TASKS: dict[str, str] = {
    "digits": "classification", "iris": "classification", "wine": "classification", "breast_cancer": "classification",
    "shakespeare": "language_model", "adding": "regression", "copy": "sequence", "sine": "regression",
    "parity": "sequence_classification",
}

TaskName = Literal["classification", "regression", "sequence_classification", "sequence", "language_model"]
FormatName = Literal["auto", "csv", "npz", "npy", "images", "text"]


class DataSpec(BaseModel):
    """Where the data comes from, the task, and how it is split (see docs/data.md)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(
        default=None,
        description="A built-in dataset: " + ", ".join(DATASETS) + ". Give this or 'path'.",
    )
    path: str | None = Field(
        default=None,
        description="Your own data, relative to the spec file: a .csv/.csv.gz/.tsv table, an .npz or .npy array "
        "file, a folder of images with one sub-folder per class, or a .txt corpus. Give this or 'dataset'.",
    )
    format: FormatName = Field(default="auto", description="File format; 'auto' picks it from the extension (a folder = images).")
    target: str | None = Field(
        default=None,
        description="CSV: the label column (required for your own CSV). NPZ: the name of the target array (default 'y').",
    )
    features: list[str] | None = Field(
        default=None, description="CSV: the feature columns, in order (default: every column except the target)."
    )
    target_path: str | None = Field(
        default=None, description="NPY only: a second .npy file holding the targets (a .npy file holds one array)."
    )
    delimiter: str | None = Field(default=None, description="CSV field separator (default: tab for .tsv, else ',').")
    task: TaskName | None = Field(
        default=None,
        description="classification, regression, sequence_classification, sequence (one output per step) or "
        "language_model (next character); default: inferred from the source (see docs/data.md).",
    )
    num_classes: PositiveInt | None = Field(
        default=None, description="Number of classes; default: inferred from the labels. Labels must be 0..num_classes-1."
    )
    val: float | None = Field(
        default=None,
        description="Fraction of the samples held out for validation (default 0.2, or 0 when val_path is given).",
    )
    test: float = Field(default=0.0, description="Fraction of the samples held out for testing (default 0).")
    val_path: str | None = Field(default=None, description="A separate validation file, same format and columns as 'path'.")
    test_path: str | None = Field(default=None, description="A separate test file, same format and columns as 'path'.")
    shuffle: bool = Field(default=True, description="Shuffle the samples (with the spec's seed) before splitting.")
    standardize: bool | None = Field(
        default=None,
        description="Subtract the mean and divide by the standard deviation, both measured on the training split "
        "only; default: true for tables, arrays and images, false for generated sequences and text.",
    )
    seq_len: PositiveInt | None = Field(
        default=None, description="Sequence length for generators and text windows (default: model.input_shape[0])."
    )
    num_samples: PositiveInt | None = Field(
        default=None, description="Generators: how many sequences to make. Files: use at most this many samples."
    )
    noise: float | None = Field(default=None, description="Generators (sine): standard deviation of the added noise (default 0.1).")
    copy_len: PositiveInt | None = Field(default=None, description="Copy task: how many symbols to remember (default 5).")
    sequence_column: str | None = Field(
        default=None, description="CSV: a column holding each sample's variable-length sequence, steps separated by "
        "spaces (ids or numbers); padded with 0 to model.input_shape's T, lengths kept (docs/sequences.md).",
    )
    lengths: str | None = Field(
        default=None, description="NPZ: the name of an array of per-sample lengths for x padded to (N, T, …) "
        "(variable-length sequences; steps past a length are set to 0).",
    )
    bucket: bool = Field(
        default=False, description="Variable-length sequences: group samples of similar length into the same "
        "training batch (less padding per batch; the batch order stays shuffled).",
    )
    tokenizer: Literal["char", "word"] = Field(
        default="char", description="Text: 'char' (one id per character) or 'word' (Keras TextVectorization: "
        "standardised, split on whitespace; id 0 = padding, 1 = [UNK], then words by frequency).",
    )
    max_tokens: int | None = Field(
        default=None, ge=3, description="tokenizer: word: the vocabulary size, counting the padding and [UNK] ids "
        "(as Keras' max_tokens); the most frequent training words are kept, the rest become [UNK]. Default: all.",
    )
    text_standardize: Literal["lower_and_strip_punctuation", "lower", "strip_punctuation", "none"] = Field(
        default="lower_and_strip_punctuation", description="tokenizer: word: how text is standardised before "
        "splitting (Keras' standardize: ASCII lowercase and/or ASCII punctuation removed).",
    )
    padding: Literal["post", "pre"] = Field(
        default="post", description="Variable-length sequences: where the padding sits, 'post' (after the steps) "
        "or 'pre' (before them, Keras pad_sequences' default); an NPZ with lengths must say how its x was padded. "
        "Masked layers give the same results either way (docs/sequences.md).",
    )
    image_size: list[PositiveInt] | None = Field(
        default=None,
        description="Image folders: resize every image to [height, width] (default: the model's input_shape, "
        "or the images' own size when they all agree).",
    )

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v: str | None) -> str | None:
        if v is None or v in DATASETS:
            return v
        from ..text import suggest

        hint = suggest(v, list(DATASETS))
        raise ValueError(
            f"unknown dataset '{v}'" + (f"; {hint}" if hint else "") + f" (built-in: {', '.join(DATASETS)})"
        )

    @field_validator("val", "test")
    @classmethod
    def _fraction(cls, v: float | None) -> float | None:
        if v is not None and not 0.0 <= v < 1.0:
            raise ValueError(f"must be a fraction in [0, 1), e.g. 0.2, got {v}")
        return v

    @field_validator("image_size")
    @classmethod
    def _hw(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and len(v) != 2:
            raise ValueError(f"must be [height, width], got {v}")
        return v

    @field_validator("noise")
    @classmethod
    def _noise(cls, v: float | None) -> float | None:
        if v is not None and v < 0:
            raise ValueError(f"must be ≥ 0 (a standard deviation), got {v}")
        return v

    @field_validator("delimiter")
    @classmethod
    def _delim(cls, v: str | None) -> str | None:
        if v is not None and len(v) != 1:
            raise ValueError(f"must be a single character such as ',' or ';' (tab: \"\\t\"), got {v!r}")
        return v

    # Options that need another key: checked on the key itself, so the error points at its line.
    @field_validator("tokenizer")
    @classmethod
    def _text_source(cls, v: str, info: ValidationInfo) -> str:
        dataset = info.data.get("dataset")
        if v == "word" and dataset is not None and dataset != "shakespeare":
            raise ValueError(f"tokenizer: word reads text, and dataset '{dataset}' is not text (the text sources: "
                             "dataset: shakespeare, a .txt path, a CSV text column as sequence_column)")
        return v

    @field_validator("max_tokens", "text_standardize")
    @classmethod
    def _word_only(cls, v: Any, info: ValidationInfo) -> Any:
        if v is not None and info.data.get("tokenizer") != "word":
            raise ValueError(f"{info.field_name} configures the word tokenizer; add tokenizer: word, or remove it")
        return v

    @field_validator("padding")
    @classmethod
    def _ragged_only(cls, v: str, info: ValidationInfo) -> str:
        if v == "pre" and info.data.get("sequence_column") is None and info.data.get("lengths") is None:
            raise ValueError("padding: pre applies to variable-length sequences; set sequence_column (CSV) or "
                             "lengths (NPZ) too, or remove padding")
        return v

    @model_validator(mode="after")
    def _source(self) -> "DataSpec":
        if (self.dataset is None) == (self.path is None):
            raise ValueError(
                "give exactly one of 'dataset' (a built-in, e.g. dataset: digits) or 'path' (your own file)"
                if self.dataset is None else "give either 'dataset' or 'path', not both"
            )
        if self.val is not None and self.val > 0 and self.val_path is not None:
            raise ValueError("give either 'val' (a fraction) or 'val_path' (a file), not both")
        if self.test > 0 and self.test_path is not None:
            raise ValueError("give either 'test' (a fraction) or 'test_path' (a file), not both")
        if self.val_fraction + self.test >= 1.0:
            raise ValueError(f"val + test must leave samples for training, got {self.val_fraction} + {self.test}")
        if self.sequence_column is not None and self.lengths is not None:
            raise ValueError("sequence_column (a CSV column) and lengths (an NPZ array) are two ways to give "
                             "variable-length sequences; use the one that fits your file")
        if self.bucket and self.sequence_column is None and self.lengths is None:
            raise ValueError("bucket groups variable-length sequences by length; set sequence_column (CSV) or "
                             "lengths (NPZ) too, or remove bucket")
        if self.dataset is not None and any(
            v is not None for v in (self.val_path, self.test_path, self.target_path, self.delimiter,
                                    self.sequence_column, self.lengths)
        ):
            raise ValueError("val_path, test_path, target_path and delimiter apply to 'path' only, not to a built-in dataset")
        return self

    @property
    def val_fraction(self) -> float:
        """The validation fraction in effect: ``val``, else 0.2 unless a ``val_path`` is given."""
        if self.val is not None:
            return self.val
        return 0.0 if self.val_path is not None else 0.2
