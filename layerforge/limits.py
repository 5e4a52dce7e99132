"""Every bound layerforge puts on what it reads, in one place: sizes and counts in a spec, the YAML itself,
and the memory a data file may take.

A leaf module (pydantic only, no torch or numpy), so layers, spec, data and engine share one set of
numbers. The bounds are far above anything a real spec or data set needs; their job is to turn an
absurd value (``units: 9223372036854775808``, ``num_layers: 100000000``, a 3 GiB ``.npz`` bomb) into a
located error in milliseconds instead of an overflow deep in torch, a hang or an exhausted machine.

- :data:`Size` bounds every size field (units, filters, an axis of ``input_shape``, a vocabulary, a kernel,
  a batch): at most :data:`MAX_SIZE`, the largest index torch's 32-bit kernels take. Products of sizes are
  bounded by the model-size check (exact integers, before anything is allocated).
- :data:`Count` bounds every repeat count (stacked layers, heads): at most :data:`MAX_COUNT`, because
  building a layer costs time in proportion to it even on the meta device (torch's RNN modules take time
  quadratic in their stacked layers), and no model needs more.
- Layer types that declare a plain ``int`` still get :data:`MAX_SIZE` (``LayerSpec`` checks every integer
  parameter), so a plugin or a new family is bounded without doing anything.
- A data file may take at most :func:`data_memory_limit` bytes once loaded (checked from its header or its
  size before it is read); ``LAYERFORGE_MAX_DATA_BYTES`` raises it.
"""
from __future__ import annotations

import os
import re
from typing import Annotated

from annotated_types import Ge, Le

MAX_SIZE = 2**31 - 1
MAX_COUNT = 256
MAX_SEED = 2**63 - 1  # torch.manual_seed and NumPy take any 64-bit seed; a signed one fits both

Size = Annotated[int, Ge(1), Le(MAX_SIZE)]
Count = Annotated[int, Ge(1), Le(MAX_COUNT)]
NonNegativeSize = Annotated[int, Ge(0), Le(MAX_SIZE)]

# --- YAML ----------------------------------------------------------------------------------------
MAX_SPEC_BYTES = 1 << 20  # a spec file; real ones are a few KB (a megabyte of YAML takes seconds to read)
MAX_YAML_DEPTH = 64  # nesting, counted through aliases; a spec nests about 6 levels
MAX_YAML_NODES = 100_000  # values once every alias is expanded (a 'billion laughs' file has 10^9)

# --- data ----------------------------------------------------------------------------------------
DATA_BYTES_ENV = "LAYERFORGE_MAX_DATA_BYTES"
DEFAULT_DATA_BYTES = 2 << 30
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_bytes(text: str) -> int | None:
    """``"8G"``, ``"512m"``, ``"1.5GiB"``, ``"1000000"`` → bytes; None if it is not a size."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not m:
        return None
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def data_memory_limit() -> int:
    """The most bytes one data set may take in memory: ``LAYERFORGE_MAX_DATA_BYTES`` (e.g. ``8G``), else 2 GiB.
    (An unreadable value falls back to the default; :func:`memory_hint` shows how to set it.)"""
    value = parse_bytes(os.environ.get(DATA_BYTES_ENV, ""))
    return value if value and value > 0 else DEFAULT_DATA_BYTES


def memory_hint(need: int) -> str:
    """How to raise the data memory limit to fit ``need`` bytes."""
    gib = max(1, -(-need // (1 << 30)))
    return (f"if the machine has the memory, raise the limit: {DATA_BYTES_ENV}={gib}G "
            f"(now {data_memory_limit():,} bytes); otherwise use a smaller file")
