"""Which samples go to training, validation and test: one rule, used by the split itself
(:func:`layerforge.data.prepare.load_data`) and by sources that must know the training samples before
the split is made (a word vocabulary counts the training text only)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import DataError

if TYPE_CHECKING:
    from .schema import DataSpec


def rng(seed: int, stream: int) -> np.random.Generator:
    """Independent seeded streams (0: generators, 1: shuffling) from the spec's seed."""
    return np.random.default_rng([seed % (1 << 64), stream])


def split_sizes(n: int, val: float, test: float, where: str) -> tuple[int, int, int]:
    """(train, val, test) counts; refuses a split that would leave a requested part empty."""
    n_val, n_test = int(round(n * val)), int(round(n * test))
    n_train = n - n_val - n_test
    if n_train < 1 or (val > 0 and n_val < 1) or (test > 0 and n_test < 1):
        raise DataError(
            f"{where}: {n} sample{'s' if n != 1 else ''} are too few for val {val} + test {test} "
            f"(train would get {n_train}, val {n_val}, test {n_test})",
            hint="use more data, smaller val/test fractions, or set val: 0 / test: 0",
        )
    return n_train, n_val, n_test


def split_order(n: int, ds: "DataSpec", seed: int, contiguous: bool, generated: bool,
                where: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The samples in use (shuffled with the seed unless ``contiguous`` or ``shuffle: false``, capped at
    ``num_samples`` for files) and their train / val / test parts, in that order."""
    order = rng(seed, 1).permutation(n) if ds.shuffle and not contiguous else np.arange(n)
    if ds.num_samples is not None and not generated and ds.num_samples < n:
        order = order[: ds.num_samples]
    n_train, n_val, _ = split_sizes(len(order), ds.val_fraction, 0.0 if ds.test_path else ds.test, where)
    return order, {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
