"""Small text helpers shared by every part: "did you mean" hints and human-readable sizes.

A leaf module (imports nothing of layerforge), so layers, spec, data, engine, analysis and the CLI can
all use it without crossing a boundary.
"""
from __future__ import annotations

import re
from difflib import SequenceMatcher
from typing import Iterable

_NUMBER = re.compile(r"\d+")


def close_matches(word: object, choices: Iterable[object], n: int = 3, cutoff: float = 0.6,
                  spread: float = 0.1) -> list[str]:
    """The choices close enough to ``word`` to be what was meant, best first.

    - a choice that differs only in letter case wins outright (``Y`` → ``y``);
    - a choice that differs only in a number is another item, not a typo: ``t29`` suggests neither
      ``t28`` nor ``t2`` (numbered columns, ``dense_1``/``dense_2`` layer names);
    - otherwise difflib's similarity ratio must reach ``cutoff``, and only choices within ``spread`` of
      the best one are kept (``val_acuracy`` suggests ``val_accuracy``, not also ``accuracy``).
    """
    w = str(word)
    unique = [str(c) for c in dict.fromkeys(choices)]
    same_case = [c for c in unique if c != w and c.lower() == w.lower()]
    if same_case:
        return same_case[:1]
    skeleton = _NUMBER.sub("#", w)
    scored = []
    for c in unique:
        if c == w or _NUMBER.sub("#", c) == skeleton:
            continue
        ratio = SequenceMatcher(None, w, c).ratio()
        if ratio >= cutoff:
            scored.append((ratio, c))
    if not scored:
        return []
    scored.sort(key=lambda rc: -rc[0])
    best = scored[0][0]
    return [c for r, c in scored if r >= best - spread][:n]


def suggest(word: object, choices: Iterable[object], n: int = 3) -> str | None:
    """A "did you mean 'x'?" hint for ``word`` among ``choices``, or None when nothing is close."""
    close = close_matches(word, choices, n=n)
    if not close:
        return None
    return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"


def human_bytes(n: float) -> str:
    """1536 → '1.5 KiB' (binary prefixes, as memory is usually shown)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def human_count(n: float) -> str:
    """1234567 → '1.23M' (SI prefixes, as FLOP counts are usually shown)."""
    for unit, div in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return str(int(n))


def format_info(info: dict[str, object]) -> str:
    """A layer's ``extra_info`` as one short line, as ``inspect`` and ``profile`` show it: ``key: value``
    pairs joined by '; ' (whole numbers with thousands separators, a list as its items, a compression
    ratio with ×): ``backend: blocked; attended pairs: 27; computed pairs: 72``."""
    def fmt(key: str, value: object) -> str:
        if isinstance(value, list):
            return ", ".join(map(str, value))
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{value:,}"
        return f"{value}×" if key == "compression" else str(value)

    return "; ".join(f"{k.replace('_', ' ')}: {fmt(k, v)}" for k, v in info.items())


def parse_bytes(text: str) -> int:
    """'4GiB' → 4294967296, '512 MB' → 512000000, '1e9' → 1000000000 (binary and SI units, B optional).
    Raises ValueError with the accepted forms."""
    import re

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([KMGT]i?)?B?\s*", text, re.IGNORECASE)
    if not m:
        raise ValueError(f"'{text}' is not a size; use e.g. 4GiB, 512MiB, 8GB or a number of bytes")
    unit = (m.group(2) or "").upper().replace("I", "i")
    scale = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}[unit]
    return int(float(m.group(1)) * scale)
