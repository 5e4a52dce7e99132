"""Architecture and hyper-parameter search over specs, on Optuna (``layerforge search``, ``lf.search``).

::

    spec with search:  ── space.Space ──▶ a sampled mapping per trial ── build.load ──▶ (Spec, Graph)
        ── objective: budget check (params, FLOPs, latency) before any training ── engine train ──▶
        trial-<k>/ (an ordinary run directory)  ── values, pruning from per-epoch events ──▶ the study
        ── report: leaderboard, Pareto front, best.yaml, importances, plots

Modules: ``schema`` (the ``search:`` section, torch- and Optuna-free: the spec package imports it),
``space`` (paths, ranges, ``when:``, sampling, applying a sample), ``objective`` (one trial), ``study``
(storage, sampler, pruner, locks, the worker loop, stale trials), ``studydir`` (the study directory),
``report`` (what is left at the end), ``api`` (:func:`~layerforge.search.api.search`), ``worker`` (the
entry point of ``--workers`` processes). This file imports nothing heavy, so the spec schema stays light.
"""
from __future__ import annotations

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    """``lf.search(...)`` is the facade's function, but importing this package (the spec schema does) sets the
    attribute ``layerforge.search`` to the package itself; so the package is callable, the same function."""

    def __call__(self, spec: Any, **kwargs: Any) -> Any:
        from .api import search

        return search(spec, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
