"""Fitted input transforms. Fitted on the training split only, saved with a run as plain JSON
(``state_dict``), and re-applied by evaluate/predict through :func:`transform_from_state`.

Standardisation axes follow the per-sample shape (what is "one feature"):

- ``(F,)`` tables: one mean/std per feature column;
- ``(T, F)`` sequences: one per feature, pooled over time steps;
- ``(C, H, W)`` images (and any rank ≥ 3): one per channel, pooled over positions.

A feature with zero spread (e.g. a pixel that is always 0) gets std 1, so it becomes 0 rather than NaN.
Integer inputs (token ids for an embedding) are never standardised.
"""
from __future__ import annotations

from typing import Any

from ..errors import DataError
from .bundle import Inputs, Transform

EPS = 1e-8


def stat_shape(sample: tuple[int, ...]) -> tuple[int, ...]:
    """The broadcastable shape of the mean/std for one sample of shape ``sample``."""
    if len(sample) <= 1:
        return tuple(sample)
    if len(sample) == 2:
        return (1, sample[1])
    return (sample[0], *([1] * (len(sample) - 1)))


class Standardize(Transform):
    """x ↦ (x − mean) / std per feature (see the module docstring for which axes)."""

    kind = "standardize"

    def __init__(self) -> None:
        # name → (mean, std) as nested Python lists with their broadcast shape; "" for a single tensor.
        self.stats: dict[str, dict[str, Any]] = {}
        self.single = True
        self._cache: dict[tuple[str, Any, Any], tuple[Any, Any]] = {}

    # --- fitting ---------------------------------------------------------------------------------
    def fit(self, x: Inputs) -> "Standardize":
        self.single = not isinstance(x, dict)
        items = {"": x} if self.single else x
        self.stats = {}
        for name, t in items.items():
            if t.dtype.is_floating_point:
                self.stats[name] = self._fit_one(t)
        self._cache = {}
        return self

    @staticmethod
    def _fit_one(t: Any) -> dict[str, Any]:
        import torch

        sample = tuple(t.shape[1:])
        shape = stat_shape(sample)
        t64 = t.to(torch.float64)  # (N, *sample)
        if len(sample) <= 1:
            dims: tuple[int, ...] = (0,)
        elif len(sample) == 2:
            dims = (0, 1)
        else:
            dims = (0, *range(2, t.ndim))
        mean = t64.mean(dim=dims).reshape(shape)
        std = t64.std(dim=dims, unbiased=False).reshape(shape)
        std = torch.where(std < EPS, torch.ones_like(std), std)
        return {"shape": list(shape), "mean": mean.flatten().tolist(), "std": std.flatten().tolist()}

    # --- applying --------------------------------------------------------------------------------
    def _stats_for(self, name: str, t: Any) -> tuple[Any, Any]:
        import torch

        key = (name, t.device, t.dtype)
        if key not in self._cache:
            s = self.stats[name]
            mean = torch.tensor(s["mean"], dtype=torch.float64).reshape(s["shape"]).to(t.device, t.dtype)
            std = torch.tensor(s["std"], dtype=torch.float64).reshape(s["shape"]).to(t.device, t.dtype)
            self._cache[key] = (mean, std)
        return self._cache[key]

    def _apply_one(self, name: str, t: Any) -> Any:
        if name not in self.stats or not t.dtype.is_floating_point:
            return t
        want = tuple(self.stats[name]["shape"])
        mean, std = self._stats_for(name, t)
        if len(want) > t.ndim - 1 or any(w not in (1, d) for w, d in zip(want[::-1], t.shape[::-1])):
            raise DataError(
                f"the saved standardisation expects samples shaped like {want}, got {tuple(t.shape[1:])}",
                hint="predict/evaluate inputs must have the same features as the training data",
            )
        return (t - mean) / std  # (N, *sample)

    def apply(self, x: Inputs) -> Inputs:
        if isinstance(x, dict):
            return {k: self._apply_one(k, v) for k, v in x.items()}
        return self._apply_one("" if self.single else next(iter(self.stats), ""), x)

    # --- persistence -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "single": self.single, "inputs": self.stats}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.single = bool(state.get("single", True))
        self.stats = {str(k): dict(v) for k, v in state.get("inputs", {}).items()}
        self._cache = {}


TRANSFORMS: dict[str, type[Transform]] = {"identity": Transform, "standardize": Standardize}


def transform_from_state(state: dict[str, Any] | None) -> Transform:
    """Rebuild a fitted transform from its saved ``state_dict`` (None or ``{}`` → identity)."""
    if not state:
        return Transform()
    kind = state.get("kind", "identity")
    if kind not in TRANSFORMS:
        raise DataError(
            f"unknown saved data transform '{kind}'", hint=f"known transforms: {', '.join(TRANSFORMS)}; was the run made by a newer layerforge?"
        )
    t = TRANSFORMS[kind]()
    t.load_state_dict(state)
    return t
