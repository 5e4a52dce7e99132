"""Data: built-in datasets, the user's own files, seeded sequence generators, splits and transforms.

The engine uses three functions and the contract in :mod:`layerforge.data.bundle`:

- :func:`load_data` (spec + :class:`ModelFacts` → :class:`DataBundle`, everything checked before training)
  and :func:`check_data` (the same checks on the first samples, for ``validate``),
- :func:`load_inputs` (a file for ``predict``, with the saved transform applied; :func:`load_arrays` the same
  for arrays given in Python) and :func:`load_split`
  (a labelled file for ``evaluate --data``),
- :func:`transform_from_state` (rebuild the fitted transform saved in a run directory).

See docs/data.md for every source, task and error.
"""
from __future__ import annotations

from .bundle import TASKS, DataBundle, Split, Transform
from .fit import ModelFacts
from .inputs import load_arrays, load_inputs, load_split
from .prepare import check_data, load_data
from .transforms import Standardize, transform_from_state

__all__ = ["TASKS", "DataBundle", "ModelFacts", "Split", "Standardize", "Transform", "check_data", "load_data",
           "load_arrays", "load_inputs", "load_split", "transform_from_state"]
