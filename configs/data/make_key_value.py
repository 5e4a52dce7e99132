"""Make configs/data/key_value.npz: a key-value lookup that needs cross attention between two inputs.

Each sample has a ``memory`` of 8 slots, every slot a one-hot key (8 keys, each used once) followed by
a one-hot value (5 classes), and a ``query``: one one-hot key. The target ``y`` is the value stored
under the queried key. Run: python configs/data/make_key_value.py (seeded; rewrites the file).
"""
from pathlib import Path

import numpy as np

SLOTS, KEYS, VALUES, N = 8, 8, 5, 3000


def make(n: int = N, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    keys = np.argsort(rng.random((n, SLOTS)), axis=1)  # (N, S): a permutation of the keys per sample
    values = rng.integers(0, VALUES, size=(n, SLOTS))  # (N, S)
    memory = np.zeros((n, SLOTS, KEYS + VALUES), dtype=np.uint8)
    rows = np.arange(n)[:, None]
    slots = np.arange(SLOTS)[None, :]
    memory[rows, slots, keys] = 1
    memory[rows, slots, KEYS + values] = 1
    asked = rng.integers(0, SLOTS, size=n)  # which slot is asked for
    query = np.zeros((n, 1, KEYS), dtype=np.uint8)
    query[np.arange(n), 0, keys[np.arange(n), asked]] = 1
    y = values[np.arange(n), asked].astype(np.int64)
    return {"query": query, "memory": memory, "y": y}


if __name__ == "__main__":
    out = Path(__file__).with_name("key_value.npz")
    np.savez_compressed(out, **make())
    print(f"wrote {out}")
