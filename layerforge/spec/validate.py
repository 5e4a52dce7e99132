"""From a loaded mapping to a validated :class:`~layerforge.spec.schema.Spec` (torch-free).

Reusable blocks (:mod:`.blocks`) are expanded first; then every independent problem is collected into one
:class:`~layerforge.errors.SpecError`, each located at its file:line:col: top-level schema errors and each
layer's parameters (with did-you-mean hints). The graph's references and shapes are checked next by the
front door (:mod:`layerforge.build`), with the Spec's marks (which locate expanded layers).
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import Issue, KeyPath, SpecError
from ..layers.registry import LayerSpec, registry
from ..limits import MAX_SIZE
from ..text import suggest
from .blocks import expand_blocks, merge_repeats
from .loader import Marks
from .schema import Spec


def _descend(data: Any, loc: tuple) -> KeyPath:
    """Keep only the parts of a pydantic ``loc`` that exist in the data (drops union member tags)."""
    path: list[Any] = []
    node = data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            path.append(part)
        elif i == len(loc) - 1 and isinstance(part, (str, int)) and isinstance(node, (dict, list)):
            path.append(part)  # a missing or unknown key: point at it by name
    return tuple(path)


def _model_at(cls: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class that owns the last key of ``loc`` (for did-you-mean on unknown keys)."""
    import typing

    cur: Any = cls
    for part in loc[:-1]:
        if not (isinstance(cur, type) and issubclass(cur, BaseModel)) or part not in cur.model_fields:
            return None if not isinstance(part, int) else cur
        ann = cur.model_fields[part].annotation
        cands = [a for a in (typing.get_args(ann) or (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not cands:
            return None
        cur = cands[0]
    return cur if isinstance(cur, type) and issubclass(cur, BaseModel) else None


def _fmt_input(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def pydantic_issues(
    err: ValidationError, data: Any, marks: Marks, cls: type[BaseModel], prefix: KeyPath = (), layer: str | None = None
) -> list[Issue]:
    """Turn a pydantic ValidationError into located issues (with did-you-mean for unknown keys)."""
    out: list[Issue] = []
    for e in err.errors():
        loc = tuple(e["loc"])
        path = (*prefix, *_descend(data, loc))
        kind, hint = e["type"], None
        if kind == "extra_forbidden":
            key = loc[-1]
            owner = _model_at(cls, loc)
            allowed = [k for k in (owner.model_fields if owner else {}) if k not in ("type",)]
            hint = suggest(str(key), allowed) or (f"allowed keys: {', '.join(allowed)}" if allowed else None)
            msg = f"unknown key '{key}'"
        elif kind == "missing":
            msg = f"missing required key '{loc[-1]}'"
            owner = _model_at(cls, loc)
            if owner is not None and loc[-1] in owner.model_fields:
                desc = owner.model_fields[loc[-1]].description
                hint = desc and f"{loc[-1]}: {desc}"
        else:
            msg = e["msg"].removeprefix("Value error, ")
            if "input" in e and kind not in ("value_error",):
                msg += f", got {_fmt_input(e['input'])}"
        out.append(marks.locate(path, msg, hint, layer))
    # pydantic reports one error per union member; keep the first per (path, message) pair.
    uniq: dict[tuple, Issue] = {}
    for i in out:
        uniq.setdefault((i.path, i.message), i)
    # A misspelt required key shows up twice (unknown 'unit', missing 'units'): keep the did-you-mean one.
    misspelt = {(i.path[:-1], i.hint) for i in uniq.values() if i.message.startswith("unknown key") and i.hint}
    return [
        i for i in uniq.values()
        if not (i.message.startswith("missing required key")
                and (i.path[:-1], f"did you mean '{i.path[-1]}'?") in misspelt)
    ]


def validate_layer(raw: Any, i: int, marks: Marks) -> tuple[LayerSpec | None, list[Issue]]:
    path = ("model", "layers", i)
    if not isinstance(raw, dict):
        return None, [marks.locate(path, f"a layer must be a mapping with 'type', got {_fmt_input(raw)}",
                                   "write e.g. - {type: dense, units: 64}")]
    t = raw.get("type")
    if t is None:
        return None, [marks.locate(path, "layer has no 'type'", "add type: <layer type>; 'layerforge layers' lists them")]
    types = registry()
    if not isinstance(t, str) or t not in types:
        hint = (suggest(str(t), types) or "") + " ('layerforge layers' lists every type)"
        return None, [marks.locate((*path, "type"), f"unknown layer type '{t}'", hint.strip())]
    cls = types[t]
    label = f"{t} '{raw['name']}'" if isinstance(raw.get("name"), str) else t
    try:
        return cls.model_validate(raw), []
    except ValidationError as e:
        return None, pydantic_issues(e, raw, marks, cls, path, label)


# Integers allowed past MAX_SIZE (a key path, ints matching any list index): only the seed.
_BIG_INTEGERS = {("seed",)}


def _oversized_integers(node: Any, path: KeyPath, marks: Marks, out: list[Issue]) -> None:
    """Every integer anywhere in a spec is at most ±MAX_SIZE (the seed excepted): one generic bound, so no
    section (a new one included) hands torch, NumPy or a loop a number they overflow on or never finish."""
    if isinstance(node, dict):
        for k, v in node.items():
            _oversized_integers(v, (*path, k), marks, out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _oversized_integers(v, (*path, i), marks, out)
    elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > MAX_SIZE and path not in _BIG_INTEGERS:
        shown = str(node) if len(str(node)) <= 30 else f"a {len(str(node))}-digit number"
        out.append(marks.locate(path, f"{shown} is beyond the largest number layerforge accepts here "
                                      f"({MAX_SIZE:,} = 2**31 - 1)", "use a smaller value"))


def validate_mapping(raw: Any, marks: Marks) -> Spec:
    """A loaded mapping (after ``--set``) → a validated :class:`Spec` whose ``model.layers`` are LayerSpec
    objects, ``model.blocks`` uses expanded. Every schema and layer-parameter problem is collected into one
    SpecError. ``spec.raw`` stays the mapping as given (what a run directory saves, blocks unexpanded);
    ``spec.marks`` locate each expanded layer where it was written, so use them for later checks. (The front
    door, :func:`layerforge.build.load`, loads the plugins first and plans the graph after.)"""
    if not isinstance(raw, dict):
        raise SpecError([marks.locate((), f"a spec must be a mapping (name, model, ...), got {type(raw).__name__}",
                                      "start the file with 'model:'")])
    early: list[Issue] = []
    _oversized_integers(raw, (), marks, early)
    if early:
        raise SpecError(early)
    original = raw
    raw, marks, issues = expand_blocks(raw, marks)  # `- {block: name}` items → that block's layers
    spec: Spec | None = None
    try:
        spec = Spec.model_validate(raw)
    except ValidationError as e:
        issues += pydantic_issues(e, raw, marks, Spec)

    layers: list[LayerSpec] = []
    model_raw = raw.get("model")
    raw_layers = model_raw.get("layers") if isinstance(model_raw, dict) else None
    if isinstance(raw_layers, list):
        for i, item in enumerate(raw_layers):
            layer, errs = validate_layer(item, i, marks)
            issues += errs
            if layer is not None:
                layers.append(layer)
    if issues or spec is None:
        raise SpecError(merge_repeats(issues))
    spec.model.layers = layers
    spec._source = marks.file
    spec._raw = original
    spec._marks = marks
    return spec
