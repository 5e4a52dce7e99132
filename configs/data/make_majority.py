"""Make configs/data/majority.csv: variable-length sequence classification (lengths 5 to 50).

Each row is a sequence of token ids 1–9 (0 is kept for padding) of a random length 5–50, and its label:
1 when token 1 occurs more often than token 2, else 0 (ties are redrawn). A model that reads padding as
tokens, or stops reading at a fixed step, does worse. Run: python configs/data/make_majority.py
(seeded; rewrites the file).
"""
import csv
from pathlib import Path

import numpy as np

N, MIN_LEN, MAX_LEN, VOCAB = 1200, 5, 50, 9


def make(n: int = N, seed: int = 0) -> list[tuple[str, int]]:
    rng = np.random.default_rng(seed)
    rows = []
    while len(rows) < n:
        seq = rng.integers(1, VOCAB + 1, size=int(rng.integers(MIN_LEN, MAX_LEN + 1)))
        ones, twos = int((seq == 1).sum()), int((seq == 2).sum())
        if ones != twos:
            rows.append((" ".join(map(str, seq)), int(ones > twos)))
    return rows


if __name__ == "__main__":
    out = Path(__file__).with_name("majority.csv")
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["tokens", "label"])
        w.writerows(make())
    print(f"wrote {out}")
