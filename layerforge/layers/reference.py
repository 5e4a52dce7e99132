"""The layer reference (docs/layers.md), generated from the registry so it cannot drift from the code.

Regenerate with ``python -m layerforge.layers.reference > docs/layers.md``; a test fails when the committed
file is stale.
"""
from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel

from .registry import LayerSpec, registry


_BOUNDS = (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤"))


def type_text(ann: Any, metadata: list[Any] = ()) -> str:
    """A parameter's type as a reader wants it: ``int > 0``, ``int or [int, int]``, ``'same' | 'valid'``,
    ``list of int``; ``or null`` when None is allowed (its default is then computed)."""
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    bounds = [f"{sym} {getattr(m, attr):g}" for m in metadata for attr, sym in _BOUNDS if getattr(m, attr, None) is not None]
    written = [m.json_schema_input_type for m in metadata if isinstance(getattr(m, "json_schema_input_type", None), type)
               or typing.get_origin(getattr(m, "json_schema_input_type", None)) is not None]
    if written:  # a validator accepts a shorter form (an int for a pair): show what a spec may write
        return type_text(written[0])
    if isinstance(ann, type) and issubclass(ann, BaseModel) and not issubclass(ann, LayerSpec):  # a mapping: its keys
        return "{" + ", ".join(ann.model_fields) + "}"
    if origin is typing.Annotated:
        return type_text(args[0], [*metadata, *args[1:]])
    if origin in (typing.Union, types.UnionType):
        parts = [type_text(a) for a in args if a is not type(None)]
        return " or ".join(dict.fromkeys(parts)) + (" or null" if type(None) in args else "")
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin is list:
        return f"list of {type_text(args[0])}" if args else "list"
    if origin is tuple:
        return "[" + ", ".join(type_text(a) for a in args) + "]"
    name = getattr(ann, "__name__", None) or str(ann).replace("typing.", "")
    return name + (" " + ", ".join(bounds) if bounds else "")


def layer_parameters(cls: type[LayerSpec]) -> list[dict[str, Any]]:
    """Each parameter of a layer type: name, type, default, description — from its pydantic fields alone
    (the one place a parameter is documented)."""
    out = []
    shared = [f for f in cls.model_fields if f == "trainable" or f.endswith(("_initializer", "_regularizer"))]
    own = [f for f in cls.model_fields if f != "type" and f not in shared]
    for fname in own + shared:  # the type's own parameters first, then the weight options every type shares
        f = cls.model_fields[fname]
        default = None if f.is_required() else (f.default_factory() if f.default_factory else f.default)  # type: ignore[call-arg]
        out.append({"name": fname, "type": type_text(f.annotation, list(f.metadata)), "required": f.is_required(),
                    "default": default, "description": f.description or ""})
    return out


def doc_page(name: str, cls: type[LayerSpec]) -> str:
    """One layer type's page in Markdown: its doc, a parameter table and an example."""
    arity = f"{cls.min_inputs}" if cls.min_inputs == cls.max_inputs else (
        f"{cls.min_inputs} or more" if cls.max_inputs >= 99 else f"{cls.min_inputs} to {cls.max_inputs}")
    lines = [f"## `{name}`", "", f"*family: {cls.family} · inputs: {arity}*", "", cls.doc(), "",
             "| parameter | type | default | description |", "|---|---|---|---|"]
    for p in layer_parameters(cls):
        default = "required" if p["required"] else f"`{p['default']}`"
        typ = str(p["type"]).replace("|", "\\|")
        desc = p['description'].replace('|', '\\|')
        lines.append(f"| `{p['name']}` | {typ} | {default} | {desc} |")
    if cls.example:
        lines += ["", "Example:", "", "```yaml", cls.example.strip(), "```"]
    return "\n".join(lines) + "\n"


def render_reference() -> str:
    reg = registry()
    families: dict[str, list[str]] = {}
    for name, cls in reg.items():
        families.setdefault(cls.family, []).append(name)
    head = [
        "# Layer reference", "",
        "Generated from the registry by `python -m layerforge.layers.reference > docs/layers.md`; do not edit by hand.",
        "`layerforge layers NAME` shows the same page in the terminal. Shapes exclude the batch axis and are",
        "channels-first. FLOP conventions: [flops.md](flops.md).", "",
        "| type | family | summary |", "|---|---|---|",
    ]
    for fam in sorted(families):
        for name in families[fam]:
            head.append(f"| [`{name}`](#{name}) | {fam} | {reg[name].summary} |")
    pages = [doc_page(name, reg[name]) for fam in sorted(families) for name in families[fam]]
    return "\n".join(head) + "\n\n" + "\n".join(pages)


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.stdout.write(render_reference())
