"""Make configs/data/reverse.npz: a sequence-to-sequence task, reverse a sequence of symbols.

Each sample is a ``source`` of 6 symbols (ids 1..8) and the target ``y``, the same symbols in reverse
order. The decoder is trained with teacher forcing: its input ``decoder_in`` is the target shifted right
by one step behind a start token (9), so at step t it sees the answer to step t−1 but must recall the
source's symbol T−1−t from the encoder's state alone. Run: python configs/data/make_reverse.py (seeded;
rewrites the file).
"""
from pathlib import Path

import numpy as np

LENGTH, SYMBOLS, START, N = 6, 8, 9, 4000


def make(n: int = N, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    source = rng.integers(1, SYMBOLS + 1, size=(n, LENGTH))  # (N, T)
    y = source[:, ::-1].copy()  # (N, T)
    decoder_in = np.concatenate([np.full((n, 1), START), y[:, :-1]], axis=1)  # (N, T): teacher forcing
    return {"source": source.astype(np.int64), "decoder_in": decoder_in.astype(np.int64), "y": y.astype(np.int64)}


if __name__ == "__main__":
    out = Path(__file__).with_name("reverse.npz")
    np.savez_compressed(out, **make())
    print(f"wrote {out}")
