"""The layer reference (docs/layers.md), generated from the registry so it cannot drift from the code.

Regenerate with ``python -m layerforge.layers.reference > docs/layers.md``; a test fails when the committed
file is stale.
"""
from __future__ import annotations

from typing import Any

from .registry import LayerSpec, registry


def layer_parameters(cls: type[LayerSpec]) -> list[dict[str, Any]]:
    """Each parameter of a layer type: name, type, default, description (from its pydantic fields)."""
    out = []
    for fname, f in cls.model_fields.items():
        if fname == "type":
            continue
        default = None if f.is_required() else (f.default_factory() if f.default_factory else f.default)  # type: ignore[call-arg]
        ann = getattr(f.annotation, "__name__", None) or str(f.annotation).replace("typing.", "")
        out.append({"name": fname, "type": ann, "required": f.is_required(), "default": default,
                    "description": f.description or ""})
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
