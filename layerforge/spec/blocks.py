"""Reusable blocks: define a group of layers once under ``model.blocks`` and repeat it in ``model.layers``.

```yaml
model:
  blocks:
    encoder:                       # or a plain list of layers (repeat 1 by default)
      repeat: 6                    # default for every use (--set model.blocks.encoder.repeat=3)
      layers:
        - {type: layernorm, name: norm}
        - {type: sparse_attention, name: attn, window: 64, num_heads: 4}
        - {type: add, name: res, inputs: [input, attn]}      # `input`: what flows into this block
  layers:
    - {type: embedding, input_dim: 71, output_dim: 64}
    - {block: encoder, name: enc}  # or {block: encoder, repeat: 6}: repeat in one place only
    - {type: dense, units: 71, inputs: [enc]}                 # a use's name = its last layer's output
```

Expansion works on the raw mapping, before any layer is validated: use ``name`` (default: the block's
name) and repetition k prefix every layer of the block, ``enc.3.attn``; names inside a block are local to
it (``inputs: [attn]`` reads this repetition's ``attn``; ``input`` reads what flows into the repetition:
the previous repetition's last layer, or the layer before the use); names the block does not define are
the model's. Unnamed block layers are named ``<type>_<n>`` within the block. Errors inside a block point
at its definition (``model.blocks.encoder.layers[1]``) and name the expanded layer (``enc.3.attn``).
In the built module a dotted name is a nested submodule: ``model.layers["enc.3.attn"]`` has the
state_dict keys ``layers.enc.3.attn.*``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import Issue, KeyPath
from ..layers.registry import OUTPUT_SEP
from ..limits import MAX_COUNT
from ..text import suggest
from .loader import Marks

USE_KEYS = ("block", "name", "repeat", "inputs")
BLOCK_INPUT = "input"  # inside a block: what flows into the current repetition


@dataclass
class BlockMarks(Marks):
    """Marks for the expanded layer list: ``model.layers[i]`` of the expansion is located where that layer
    was written (a block definition's layer, or the original ``model.layers`` item)."""

    origins: dict[int, KeyPath] = field(default_factory=dict)

    def locate(self, path: KeyPath, message: str, hint: str | None = None, layer: str | None = None) -> Issue:
        if len(path) >= 3 and tuple(path[:2]) == ("model", "layers") and path[2] in self.origins:
            path = (*self.origins[path[2]], *path[3:])  # type: ignore[index]
        return super().locate(path, message, hint, layer)


@dataclass
class _Expansion:
    layers: list[Any] = field(default_factory=list)
    origins: dict[int, KeyPath] = field(default_factory=dict)
    aliases: dict[str, Any] = field(default_factory=dict)  # use name → index of its last expanded layer
    issues: list[Issue] = field(default_factory=list)


def _definition(defs: dict, name: str, marks: Marks) -> tuple[list | None, int | None, KeyPath, list[Issue]]:
    """(layers, default repeat, path of the layer list) of block ``name``, or the issues that stop it."""
    path: KeyPath = ("model", "blocks", name)
    d = defs[name]
    if isinstance(d, list) and d:
        return d, None, path, []
    if isinstance(d, dict) and isinstance(d.get("layers"), list) and d["layers"] and set(d) <= {"layers", "repeat"}:
        return d["layers"], d.get("repeat"), (*path, "layers"), []
    extra = sorted(set(d) - {"layers", "repeat"}) if isinstance(d, dict) else []
    msg = (f"unknown key '{extra[0]}' in block '{name}'" if extra else
           f"block '{name}' must be a non-empty list of layers or a mapping with 'layers' (and 'repeat')")
    return None, None, path, [marks.locate((*path, extra[0]) if extra else path, msg,
                                           "write encoder: {repeat: 2, layers: [...]} or encoder: [...]")]


def _repeat(value: Any, path: KeyPath, marks: Marks) -> tuple[int, list[Issue]]:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_COUNT:
        return value, []
    return 1, [marks.locate(path, f"repeat must be a whole number from 1 to {MAX_COUNT}, got {value!r}",
                            "e.g. repeat: 6")]


def _auto_name(kind: str, counters: dict[str, int], taken: set[str]) -> str:
    """The next free <type>_<n> (graph.plan's rule for unnamed layers); records it as taken."""
    while True:
        counters[kind] = counters.get(kind, 0) + 1
        auto = f"{kind}_{counters[kind]}"
        if auto not in taken:
            taken.add(auto)
            return auto


def _local_names(layers: list) -> list[str]:
    """Each block layer's local name: its own, or <type>_<n> counted within the block."""
    taken = {x["name"] for x in layers if isinstance(x, dict) and isinstance(x.get("name"), str)}
    counters: dict[str, int] = {}
    return [x["name"] if isinstance(x, dict) and isinstance(x.get("name"), str)
            else _auto_name(str(x.get("type", "layer")) if isinstance(x, dict) else "layer", counters, taken)
            for x in layers]


def _unknown_use_key(use: dict, key: Any, at: KeyPath, defs: dict, marks: Marks) -> Issue:
    """An unknown key in a block use. A repetition index or a block layer's name there comes from
    ``--set model.layers.enc.0.attn.window=8``: one repetition's layer, which a use does not hold (the run
    directory saves the spec unexpanded); the block's layers are set in its definition, for every repetition."""
    path, value = (*at, key), use[key]
    while isinstance(value, dict) and len(value) == 1:  # down to the leaf an override wrote (its --set origin)
        k, value = next(iter(value.items()))
        path = (*path, k)
    block = use.get("block")
    layers = _definition(defs, block, marks)[0] if isinstance(block, str) and block in defs else None
    if layers is not None and (isinstance(key, int) or key in _local_names(layers)):
        prefix = use.get("name", block)
        inner = path[len(at) + (1 if isinstance(key, int) else 0):]
        where = f"model.blocks.{block}" + (".layers" if isinstance(defs[block], dict) else "")
        return marks.locate(path, f"'{prefix}.{'.'.join(map(str, path[len(at):]))}' addresses a layer inside a use of "
                            f"block '{block}': a use has no layers of its own, so one repetition cannot be changed",
                            f"change the block's definition (every repetition): --set {where}."
                            f"{'.'.join(map(str, inner)) or '<layer>.<key>'}=...")
    return marks.locate(path[:len(at) + 1], f"unknown key '{key}' in a block use",
                        suggest(str(key), USE_KEYS) or f"allowed keys: {', '.join(USE_KEYS)}")


def _expand_use(use: dict, i: int, defs: dict, marks: Marks, out: _Expansion, prev: Any, taken: set[str]) -> None:
    """Append the layers of one ``{block: name}`` item (model.layers[i]); ``prev`` is what flows into it
    (an index into the expansion, None for the model's input); ``taken``: the names of top-level layers."""
    at: KeyPath = ("model", "layers", i)
    unknown = [k for k in use if k not in USE_KEYS]
    if unknown:
        out.issues.append(_unknown_use_key(use, unknown[0], at, defs, marks))
        return
    name = use["block"]
    if not isinstance(name, str) or name not in defs:
        known = ", ".join(defs) or "none (add model.blocks)"
        out.issues.append(marks.locate((*at, "block"), f"unknown block '{name}'",
                                       suggest(str(name), list(defs)) or f"defined blocks: {known}"))
        return
    layers, default_repeat, def_path, issues = _definition(defs, name, marks)
    if layers is None:
        out.issues += issues
        return
    if "repeat" in use and default_repeat is not None:
        out.issues.append(marks.locate((*at, "repeat"), f"repeat is given both here and in block '{name}'",
                                       f"keep one: here, or model.blocks.{name}.repeat"))
        return
    repeat_path = (*at, "repeat") if "repeat" in use else ("model", "blocks", name, "repeat")
    repeat, issues = _repeat(use.get("repeat", 1 if default_repeat is None else default_repeat), repeat_path, marks)
    out.issues += issues
    prefix = use.get("name", name)
    if not isinstance(prefix, str) or not prefix or "." in prefix:
        out.issues.append(marks.locate((*at, "name"), f"a block use's name must be a word without '.', got {prefix!r}"))
        return
    local = _local_names(layers)
    if BLOCK_INPUT in local:
        out.issues.append(marks.locate((*def_path, local.index(BLOCK_INPUT), "name"),
                                       f"'{BLOCK_INPUT}' is reserved inside a block (it reads the block's input)",
                                       "rename the layer"))
        return
    if prefix in out.aliases or prefix in taken:
        out.issues.append(marks.locate((*at, "name"), f"the name '{prefix}' is already used in model.layers",
                                       "give each use of a block its own name: {block: " + name + ", name: enc2}"))
        return
    entry = use.get("inputs")
    block_in: Any = entry[0] if isinstance(entry, list) and len(entry) == 1 else _Ref(prev)
    for k in range(repeat):
        names = {n: f"{prefix}.{k}.{n}" for n in local}
        for j, item in enumerate(layers):
            out.origins[len(out.layers)] = (*def_path, j)
            if not isinstance(item, dict):
                out.layers.append(item)  # layer validation reports it, at its definition
                continue
            new = {**item, "name": names[local[j]]}
            if isinstance(item.get("inputs"), list):
                new["inputs"] = [block_in if r == BLOCK_INPUT else _renamed(r, names) for r in item["inputs"]]
            elif j == 0 and k == 0 and entry is not None:
                new["inputs"] = entry  # the use's inputs feed its first layer
            out.layers.append(new)
        block_in = _Ref(len(out.layers) - 1)  # the next repetition reads this one's last layer
    out.aliases[prefix] = len(out.layers) - 1


def _renamed(ref: Any, names: dict[str, Any]) -> Any:
    """``ref`` with its layer renamed by ``names``, an extra output's key kept: 'lstm_a:h' → 'enc.0.lstm_a:h'."""
    if not isinstance(ref, str):
        return ref
    name, sep, part = ref.partition(OUTPUT_SEP)
    return f"{names[name]}{sep}{part}" if name in names and isinstance(names[name], str) else ref


@dataclass(frozen=True)
class _Ref:
    """A reference to what flows into a block, resolved to a name once every layer's name is known:
    an index into the expanded list, or None for the model's first input."""

    index: Any


def _layer_names(layers: list, inputs: list[str]) -> list[str | None]:
    """The name graph.plan will give each expanded layer: its own, or <type>_<n> (the same rule)."""
    taken = set(inputs) | {x["name"] for x in layers if isinstance(x, dict) and isinstance(x.get("name"), str)}
    counters: dict[str, int] = {}
    out: list[str | None] = []
    for x in layers:
        if not isinstance(x, dict) or not isinstance(x.get("type"), str):
            out.append(None)
        else:
            out.append(x["name"] if isinstance(x.get("name"), str) else _auto_name(x["type"], counters, taken))
    return out


def expand_blocks(raw: Any, marks: Marks) -> tuple[Any, Marks, list[Issue]]:
    """``raw`` with its ``model.layers`` expanded (``model.outputs`` may name a use); marks that locate each
    expanded layer where it was written; and the issues found. A spec without blocks comes back as it is."""
    model = raw.get("model") if isinstance(raw, dict) else None
    layers = model.get("layers") if isinstance(model, dict) else None
    if not isinstance(layers, list):
        return raw, marks, []
    out = _Expansion()
    for i, item in enumerate(layers):
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str) and "." in name:
            out.issues.append(marks.locate(("model", "layers", i, "name"), f"layer name '{name}' contains '.'",
                                           "'.' is reserved for the layers of blocks (enc.0.attn): use '_'"))
    defs = model.get("blocks") if "blocks" in model else {}
    uses = any(isinstance(x, dict) and "block" in x for x in layers)
    if not uses and not defs:
        return raw, marks, out.issues
    if not isinstance(defs, dict):
        return raw, marks, [*out.issues, marks.locate(("model", "blocks"), "model.blocks must map block names to layers",
                                                      "write blocks: {encoder: [...]}")]
    inputs = model.get("input_shape")
    input_names = list(inputs) if isinstance(inputs, dict) else ["input"]
    taken = set(input_names) | {x["name"] for x in layers if isinstance(x, dict) and "block" not in x
                                and isinstance(x.get("name"), str)}
    for i, item in enumerate(layers):
        prev = len(out.layers) - 1 if out.layers else None
        if isinstance(item, dict) and "block" in item:
            _expand_use(item, i, defs, marks, out, prev, taken)
        else:
            out.origins[len(out.layers)] = ("model", "layers", i)
            out.layers.append(item)
    _resolve(out, input_names)
    new_model = {**model, "layers": out.layers}
    if isinstance(model.get("outputs"), (str, list)):
        names = _layer_names(out.layers, input_names)
        alias = {u: names[j] for u, j in out.aliases.items() if j is not None}
        outs = model["outputs"]
        new_model["outputs"] = _renamed(outs, alias) if isinstance(outs, str) else [_renamed(o, alias) for o in outs]
    block_marks = BlockMarks(marks.file, marks.positions, marks.overridden, origins=out.origins)
    return {**raw, "model": new_model}, block_marks, out.issues


def _resolve(out: _Expansion, input_names: list[str]) -> None:
    """Replace block-input references and use names in ``inputs`` by the layers' final names."""
    names = _layer_names(out.layers, input_names)

    def name_of(index: Any) -> Any:
        return input_names[0] if index is None else names[index]

    alias = {u: name_of(j) for u, j in out.aliases.items()}
    for x in out.layers:
        if isinstance(x, dict) and isinstance(x.get("inputs"), list):
            x["inputs"] = [name_of(r.index) if isinstance(r, _Ref) else _renamed(r, alias) for r in x["inputs"]]


def merge_repeats(issues: list[Issue]) -> list[Issue]:
    """One issue per problem: the repetitions of a block share their definition's lines, so the same
    message at the same place comes once, its layer label naming how many more repetitions have it."""
    seen: dict[tuple, list] = {}
    for issue in issues:
        key = (issue.file, issue.line, issue.column, issue.path, issue.message, issue.hint, issue.origin)
        seen.setdefault(key, []).append(issue)
    out = []
    for first, *rest in seen.values():
        if rest and first.layer:
            first.layer += f" and {len(rest)} more repetition{'s' if len(rest) > 1 else ''}"
        out.append(first)
    return out


def block_use_schema() -> dict[str, Any]:
    """JSON Schema of a ``{block: name, ...}`` item in ``model.layers`` (for editors)."""
    return {"type": "object", "title": "block use", "required": ["block"], "additionalProperties": False,
            "properties": {
                "block": {"type": "string", "description": "The name of a block defined under model.blocks."},
                "name": {"type": "string", "description": "Prefix of the expanded layers (default: the block's name)."},
                "repeat": {"type": "integer", "minimum": 1, "description": "How many times the block repeats."},
                "inputs": {"type": "array", "items": {"type": "string"}, "description": "What the first repetition reads."},
            }}
