"""YAML loading with positions: safe loading only, duplicate keys refused, every node's line/column kept.

``load_yaml`` returns the plain Python mapping plus a :class:`Marks` table from key path to
(line, column), so any later error (pydantic, shapes) can point at the file position.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import re
from typing import Any

import yaml

from ..errors import Issue, KeyPath, PathPart, SpecError, format_path
from ..text import suggest


@dataclass
class Marks:
    """Key path → (line, column), both 1-based, for one loaded file."""

    file: str
    positions: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    overridden: dict[KeyPath, str] = field(default_factory=dict)  # path → "--set a.b=c"

    def locate(self, path: KeyPath, message: str, hint: str | None = None, layer: str | None = None) -> Issue:
        """An Issue at the closest known position for ``path`` (walking up to its parents)."""
        for k in range(len(path), -1, -1):
            sub = tuple(path[:k])
            if sub in self.overridden:
                return Issue(message, tuple(path), hint, self.file, None, None, layer, origin=self.overridden[sub])
            if sub in self.positions:
                line, col = self.positions[sub]
                return Issue(message, tuple(path), hint, self.file, line, col, layer)
        return Issue(message, tuple(path), hint, self.file, None, None, layer)


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (the default silently keeps the last one)."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            first = seen[key].start_mark
            raise yaml.constructor.ConstructorError(
                None, None,
                f"duplicate key '{key}' (first defined at line {first.line + 1}, column {first.column + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

# PyYAML follows YAML 1.1, where `1e-3` (no dot) is a string; users mean a float (YAML 1.2 agrees).
_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _walk_marks(node: yaml.Node, path: KeyPath, out: dict[KeyPath, tuple[int, int]], loader: _Loader) -> None:
    out.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = loader.construct_object(key_node)
            sub = (*path, key)
            # Point at the key itself: that is where the user looks.
            out[sub] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _walk_marks(value_node, sub, out, loader)
            out[sub] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk_marks(item, (*path, i), out, loader)


def load_yaml_text(text: str, file: str = "<string>") -> tuple[Any, Marks]:
    """Parse YAML text safely; syntax errors and duplicate keys become a located SpecError."""
    marks = Marks(file=file)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError([Issue("the file is empty", (), "a spec is a mapping with at least 'model:'", file, 1, 1)])
        data = loader.construct_document(node)
        _walk_marks(node, (), marks.positions, loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        msg = " ".join(x for x in (e.context, e.problem) if x) or str(e)
        hint = "fix the YAML syntax (indentation, a missing ':' or quote)"
        if "duplicate key" in msg:
            hint = "remove or rename one of the two entries"
        elif "'\\t'" in msg:  # PyYAML: "found character '\t' that cannot start any token"
            msg = "tabs are not allowed in YAML (a tab character is here)"
            hint = "indent and separate with spaces instead of tabs (most editors can convert tabs to spaces)"
        raise SpecError([
            Issue(f"YAML: {msg}", (), hint, file, mark.line + 1 if mark else None, mark.column + 1 if mark else None)
        ]) from None
    except yaml.YAMLError as e:  # pragma: no cover - unmarked YAML errors are rare
        raise SpecError([Issue(f"YAML: {e}", (), None, file)]) from None
    finally:
        loader.dispose()
    return data, marks


def load_yaml(path: str | Path) -> tuple[Any, Marks]:
    p = Path(path)
    if not p.exists():
        raise SpecError([Issue(f"no such file: {p}", (), "check the path to the config", str(p))])
    if p.is_dir():
        run = (p / "spec.yaml").is_file()
        raise SpecError([Issue(f"{p} is a directory, not a YAML file", (),
                               f"this is a run directory: give its spec, {p / 'spec.yaml'}" if run else None, str(p))])
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError([Issue(f"cannot read {p}: {e}", (), None, str(p))]) from None
    return load_yaml_text(text, str(p))


# ---------------------------------------------------------------------------------------------
# --set overrides
# ---------------------------------------------------------------------------------------------
def parse_override(item: str) -> tuple[KeyPath, Any]:
    """``"model.layers.4.units=128"`` → (("model", "layers", 4, "units"), 128). Values are YAML scalars."""
    if "=" not in item:
        raise SpecError([Issue(f"override '{item}' has no '='", (), "write --set key.path=value, e.g. --set train.epochs=5",
                               origin=f"--set {item}")])
    key, _, raw = item.partition("=")
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise SpecError([Issue(f"override '{item}' has an empty key part", (), "write --set key.path=value",
                               origin=f"--set {item}")])
    parts: list[str | int] = [int(p) if p.lstrip("-").isdigit() else p for p in key.split(".")]
    try:
        value = yaml.load(raw, Loader=_Loader) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return tuple(parts), value


def _list_index(items: list, part: PathPart, at: KeyPath, origin: str) -> int:
    """A list entry by index, or by name for lists of named mappings (``model.layers.logits``)."""
    if isinstance(part, int):
        if not -len(items) <= part < len(items):
            raise SpecError([Issue(f"index {part} is out of range: {format_path(at)} has {len(items)} entries",
                                   (*at, part), "use an index from 0, or a layer's name", origin=origin)])
        return part % len(items)
    # A named entry, or a block use (model.layers' {block: encoder}) by its name, which defaults to the block's.
    names = [e.get("name", e.get("block")) if isinstance(e, dict) else None for e in items]
    if part in names:
        return names.index(part)
    known = [n for n in names if isinstance(n, str)]
    hint = suggest(part, known) or (f"the names are: {', '.join(known)}; or use an index from 0" if known
                                    else "no entry has a name: use an index from 0")
    raise SpecError([Issue(f"no entry named '{part}' in {format_path(at)}", (*at, part), hint, origin=origin)])


def apply_overrides(data: Any, overrides: list[str], marks: Marks) -> Any:
    """Apply ``--set`` overrides in order; intermediate mappings are created where missing. List entries
    are addressed by index or, for named entries such as layers, by name: ``model.layers.logits.units=12``."""
    for item in overrides or []:
        path, value = parse_override(item)
        origin = f"--set {item}"
        if not isinstance(data, dict):
            data = {}
        node: Any = data
        resolved: list[PathPart] = []  # the path with names turned into indices (what errors point at)
        for i, part in enumerate(path[:-1]):
            nxt = path[i + 1]
            if isinstance(node, list):
                part = _list_index(node, part, tuple(resolved), origin)
                resolved.append(part)
                node = node[part]
                continue
            resolved.append(part)
            if isinstance(node, dict):
                if part not in node or node[part] is None:
                    node[part] = [] if isinstance(nxt, int) else {}
                node = node[part]
            else:
                raise SpecError([Issue(f"{format_path(path[:i])} is a value, it has no '{part}'",
                                       path[: i + 1], None, origin=origin)])
        last = path[-1]
        if isinstance(node, list):
            last = _list_index(node, last, tuple(resolved), origin)
            node[last] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise SpecError([Issue(f"{format_path(path[:-1])} is a value, it has no '{last}'", path, None, origin=origin)])
        marks.overridden[(*resolved, last)] = origin
    return data
