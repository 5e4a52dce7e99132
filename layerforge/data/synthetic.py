"""Seeded sequence tasks that show why gated recurrent layers exist: the answer depends on inputs far
back in the sequence, so a plain RNN's vanishing gradient shows. Same seed → the same arrays.

Each generator returns ``x`` (N, T, F) float32 or (N, T) int64 token ids, and ``y``:

- **adding** (Hochreiter & Schmidhuber 1997; Le et al. 2015): x (T, 2): column 0 values ~ U(0, 1),
  column 1 a marker that is 1 at exactly two steps (one in each half). y = the sum of the two marked
  values (regression). Always predicting the mean (1.0) has MSE = Var(U₁ + U₂) = 2/12 ≈ 0.167.
- **copy** (Arjovsky et al. 2016): tokens 0 = blank, 1..8 = symbols, 9 = delimiter. The first
  ``copy_len`` steps hold random symbols, then blanks, then the delimiter ``copy_len + 1`` steps before
  the end. y per step: blank everywhere except the last ``copy_len`` steps, which repeat the symbols
  (task ``sequence``, 10 classes). Guessing blanks then random symbols scores
  ``copy_len · ln 8 / T`` cross-entropy per step.
- **sine**: x (T, 1) = A·sin(2πft + φ) + N(0, noise²) with A ~ U(0.5, 1.5), f ~ U(1/40, 1/8) cycles per
  step, φ ~ U(0, 2π). Task ``regression``: y = the next clean value; task ``sequence``: y (T, 1) = the
  clean value one step after each input step.
- **parity**: x (T, 1) random bits. Task ``sequence_classification``: y = 1 when the number of ones is
  odd; task ``sequence``: y (T,) the running parity after each step.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COPY_SYMBOLS = 8  # tokens 1..8
COPY_VOCAB = COPY_SYMBOLS + 2  # + blank (0) + delimiter (9)


@dataclass(frozen=True)
class Generator:
    """Defaults and the tasks a generator can produce (the first is the default)."""

    seq_len: int
    num_samples: int
    tasks: tuple[str, ...]


GENERATORS: dict[str, Generator] = {
    "adding": Generator(50, 10_000, ("regression",)),
    "copy": Generator(20, 4_000, ("sequence",)),
    "sine": Generator(50, 4_000, ("regression", "sequence")),
    "parity": Generator(16, 4_000, ("sequence_classification", "sequence")),
}


def adding(n: int, seq_len: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """x (n, T, 2) float32, y (n,) float32 = sum of the two marked values."""
    values = rng.random((n, seq_len), dtype=np.float64)  # (N, T)
    half = max(seq_len // 2, 1)
    i = rng.integers(0, half, size=n)
    j = rng.integers(half, seq_len, size=n) if seq_len > 1 else i
    marks = np.zeros((n, seq_len))
    rows = np.arange(n)
    marks[rows, i] = 1.0
    marks[rows, j] = 1.0
    y = values[rows, i] + values[rows, j]
    x = np.stack([values, marks], axis=-1)  # (N, T, 2)
    return x.astype(np.float32), y.astype(np.float32)


def copy(n: int, seq_len: int, copy_len: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """x (n, T) int64 token ids, y (n, T) int64 (see the module docstring for the layout)."""
    if seq_len < 2 * copy_len + 1:
        raise ValueError(f"the copy task needs seq_len ≥ 2·copy_len + 1 = {2 * copy_len + 1}, got {seq_len}")
    symbols = rng.integers(1, COPY_SYMBOLS + 1, size=(n, copy_len))  # (N, L)
    x = np.zeros((n, seq_len), dtype=np.int64)
    x[:, :copy_len] = symbols
    x[:, seq_len - copy_len - 1] = COPY_VOCAB - 1  # delimiter
    y = np.zeros((n, seq_len), dtype=np.int64)
    y[:, seq_len - copy_len:] = symbols
    return x, y


def sine(n: int, seq_len: int, noise: float, task: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """x (n, T, 1) noisy window; y (n,) next clean value, or (n, T, 1) per-step next values."""
    amp = rng.uniform(0.5, 1.5, size=(n, 1))
    freq = rng.uniform(1 / 40, 1 / 8, size=(n, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    t = np.arange(seq_len + 1)[None, :]  # (1, T+1)
    clean = amp * np.sin(2 * np.pi * freq * t + phase)  # (N, T+1)
    x = clean[:, :seq_len] + rng.normal(0.0, noise, size=(n, seq_len)) if noise > 0 else clean[:, :seq_len]
    x = x[..., None].astype(np.float32)  # (N, T, 1)
    if task == "sequence":
        return x, clean[:, 1:, None].astype(np.float32)  # (N, T, 1)
    return x, clean[:, seq_len].astype(np.float32)  # (N,)


def parity(n: int, seq_len: int, task: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """x (n, T, 1) bits as floats; y (n,) parity, or (n, T) running parity."""
    bits = rng.integers(0, 2, size=(n, seq_len))  # (N, T)
    x = bits[..., None].astype(np.float32)  # (N, T, 1)
    if task == "sequence":
        return x, (np.cumsum(bits, axis=1) % 2).astype(np.int64)  # (N, T)
    return x, (bits.sum(axis=1) % 2).astype(np.int64)  # (N,)


def generate(name: str, *, seed: int, num_samples: int, seq_len: int, task: str, noise: float = 0.1,
             copy_len: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Make the ``name`` task's arrays from ``seed`` (deterministic across runs and platforms)."""
    rng = np.random.default_rng(seed)
    if name == "adding":
        return adding(num_samples, seq_len, rng)
    if name == "copy":
        return copy(num_samples, seq_len, copy_len, rng)
    if name == "sine":
        return sine(num_samples, seq_len, noise, task, rng)
    if name == "parity":
        return parity(num_samples, seq_len, task, rng)
    raise KeyError(name)
