"""From a YAML file (or a dict) to a validated Spec and its shape-checked Graph.

Every independent problem is collected into one :class:`~layerforge.errors.SpecError`: top-level
schema errors, each layer's parameters, references, cycles, shapes, and a model too large to allocate.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import Issue, KeyPath, SpecError
from ..graph import Graph, plan
from ..layers.registry import LayerSpec, registry, suggest
from .blocks import expand_blocks
from .loader import Marks, apply_overrides, load_yaml
from .schema import ModelSpec, Spec


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


def load_plugins_for(raw: Any, marks: Marks, extra: list[str] | None) -> None:
    from ..plugins import load_entry_points, load_plugin_file

    load_entry_points()
    base = Path(marks.file).parent if marks.file and not marks.file.startswith("<") else Path.cwd()
    for p in extra or []:
        load_plugin_file(p)
    if isinstance(raw, dict) and isinstance(raw.get("plugins"), list):
        for j, p in enumerate(raw["plugins"]):
            if isinstance(p, str):
                load_plugin_file(base / p if not Path(p).is_absolute() else p, where=marks.locate(("plugins", j), ""))


def validate_data(raw: Any, marks: Marks, plugins: list[str] | None = None, check_size: bool = True) -> tuple[Spec, Graph]:
    """Validate an already-loaded mapping (see :func:`load_spec`)."""
    load_plugins_for(raw, marks, plugins)
    if not isinstance(raw, dict):
        raise SpecError([marks.locate((), f"a spec must be a mapping (name, model, ...), got {type(raw).__name__}",
                                      "start the file with 'model:'")])
    # -- reusable blocks (spec/blocks.py): `- {block: name}` items become that block's layers, located
    #    at their definition; `original` (not the expansion) is what a run directory saves.
    original = raw
    raw, marks, issues = expand_blocks(raw, marks)
    # --
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
        raise SpecError(issues)

    spec.model.layers = layers
    graph, errs = plan(spec.model.input_shapes(), layers, spec.model.output_names(),
                       lambda path, msg, hint, layer: marks.locate(path, msg, hint, layer))
    if errs or graph is None:
        raise SpecError(errs)
    if check_size:
        check_model_size(graph, marks)
    spec._source = marks.file
    spec._raw = original
    return spec, graph


def load_spec(path: str | Path, overrides: list[str] | None = None, plugins: list[str] | None = None) -> tuple[Spec, Graph]:
    """Load, override (``--set``), validate and shape-check a spec file. Raises SpecError."""
    raw, marks = load_yaml(path)
    raw = apply_overrides(raw, overrides or [], marks)
    return validate_data(raw, marks, plugins)


def spec_from_dict(data: dict, overrides: list[str] | None = None) -> tuple[Spec, Graph]:
    """Validate a spec given as a Python dict (no file positions in errors)."""
    import copy

    marks = Marks(file="<dict>")
    raw = apply_overrides(copy.deepcopy(data), overrides or [], marks)
    return validate_data(raw, marks)


# ---------------------------------------------------------------------------------------------
# Size check: count parameters on the meta device (nothing allocated) before building for real.
# ---------------------------------------------------------------------------------------------
def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 40


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def check_model_size(graph: Graph, marks: Marks, bytes_per_param: int = 4) -> None:
    """Refuse a model whose parameters alone cannot fit in this machine's memory."""
    limit = _physical_memory()
    issues = []
    from ..analysis.summary import layer_param_counts

    counts = layer_param_counts(graph)
    total = sum(c[0] for c in counts.values()) * bytes_per_param
    if total > limit:
        biggest = max(graph.nodes, key=lambda n: counts[n.name][0])
        issues.append(marks.locate(
            ("model", "layers", biggest.index),
            f"the model needs {human_bytes(total)} ({total:,} bytes) for its fp32 parameters alone, more than this "
            f"machine's {human_bytes(limit)} of memory; the largest layer '{biggest.name}' has "
            f"{counts[biggest.name][0]:,} parameters",
            "reduce units/filters or the input size", biggest.layer.label()))
    for n in graph.nodes:
        from ..layers.common import numel

        act = numel(n.out_shape) * bytes_per_param
        if act > limit:
            issues.append(marks.locate(("model", "layers", n.index),
                                       f"one sample's output of this layer, {n.out_shape}, needs {human_bytes(act)} "
                                       f"({act:,} bytes), more than this machine's {human_bytes(limit)}",
                                       "reduce the layer's size or the input shape", n.layer.label()))
    if issues:
        raise SpecError(issues)
