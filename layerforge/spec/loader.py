"""YAML loading with positions: safe loading only, duplicate keys refused, every node's line/column kept,
nesting and alias expansion bounded (see :mod:`layerforge.limits`), every YAML failure a located error.

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
from ..files import NotARegularFile, TooLarge, read_bytes
from ..limits import MAX_SPEC_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES
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


class _Bounded:
    """A safe loader's parts that refuse duplicate and non-scalar keys, bounds nesting and alias expansion while
    composing (before any value is built), and turns a value no constructor can build into a located error.

    Aliases share one node, so a few hundred bytes can stand for 10^9 values (a "billion laughs" file);
    every alias counts the values it stands for, and so does every level of nesting it brings, and the
    file is refused as soon as either passes its bound (:mod:`layerforge.limits`). An alias inside the
    collection it names would make an endless value: refused too.
    """

    def _start_bounds(self) -> None:
        self._cost: dict[int, tuple[int, int]] = {}  # id(node) → (values once expanded, depth)
        self._open: list[str] = []  # anchors of the collections being composed
        self._depth = 0
        self._expanded = 0  # values that aliases stand for

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            if event.anchor in self._open:
                raise yaml.composer.ComposerError(
                    None, None, f"the alias *{event.anchor} refers to the collection that contains it (a recursive "
                    "alias would make an endless value)", event.start_mark)
            node = super().compose_node(parent, index)
            size, depth = self._cost[id(node)]
            self._expanded += size
            if self._expanded > MAX_YAML_NODES:
                raise yaml.composer.ComposerError(
                    None, None, f"aliases expand this file to more than {MAX_YAML_NODES:,} values (an alias bomb?)",
                    event.start_mark)
            if self._depth + depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"the alias *{event.anchor} nests values more than {MAX_YAML_DEPTH} levels deep",
                    event.start_mark)
            return node
        event = self.peek_event()
        if self._depth >= MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"values are nested more than {MAX_YAML_DEPTH} levels deep",
                                              event.start_mark)
        anchor = getattr(event, "anchor", None)
        self._depth += 1
        if anchor is not None:
            self._open.append(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open.pop()
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        costs = [self._cost[id(c)] for c in children]
        self._cost[id(node)] = (1 + sum(c[0] for c in costs), 1 + max((c[1] for c in costs), default=0))
        return node

    def fetch_flow_collection_start(self, TokenClass: type) -> None:  # noqa: N803 (PyYAML's name)
        """Refuse deep ``[[[[...`` while scanning: PyYAML's scanner looks ahead up to 1,024 characters at every
        open bracket, which would cost seconds before the composer's depth bound is reached."""
        if self.flow_level >= MAX_YAML_DEPTH:
            raise yaml.scanner.ScannerError(None, None, f"values are nested more than {MAX_YAML_DEPTH} levels deep",
                                            self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """A value no constructor can build (``!!int abc``, ``!!bool maybe``, a 5,000-digit integer)
        becomes an error at the value's position."""
        try:
            return super().construct_object(node, deep=deep)
        except yaml.MarkedYAMLError:
            raise
        except (ValueError, TypeError, KeyError, OverflowError, IndexError) as e:
            tag = node.tag.rsplit(":", 1)[-1] if isinstance(node.tag, str) else node.tag
            shown = repr(node.value) if isinstance(node, yaml.ScalarNode) else f"this {type(node).__name__[:-4].lower()}"
            if len(shown) > 60:
                shown = shown[:57] + "..."
            raise yaml.constructor.ConstructorError(
                None, None, f"{shown} is not a valid {tag} ({type(e).__name__}: {str(e)[:120]})", node.start_mark
            ) from None


def _construct_mapping(loader: Any, node: yaml.Node, deep: bool = False) -> dict:
    if not isinstance(node, yaml.MappingNode):
        raise yaml.constructor.ConstructorError(None, None, f"expected a mapping here, found a {node.id}",
                                                node.start_mark)
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:  # the mapping's own keys (merged ones, `<<: *base`, may be overridden)
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        if not isinstance(key_node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"a key must be a plain value (a name or a number), not a {key_node.id}",
                key_node.start_mark)
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            first = seen[key].start_mark
            raise yaml.constructor.ConstructorError(
                None, None,
                f"duplicate key '{key}' (first defined at line {first.line + 1}, column {first.column + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node
    loader.flatten_mapping(node)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


class _PyLoader(_Bounded, yaml.SafeLoader):
    """The bounded safe loader on PyYAML's pure-Python scanner and parser."""

    def __init__(self, stream: str) -> None:
        yaml.SafeLoader.__init__(self, stream)
        self._start_bounds()


_LOADERS: list[type] = [_PyLoader]
if yaml.__with_libyaml__:  # libyaml scans and parses about ten times faster; composing stays ours
    class _CLoader(_Bounded, yaml.composer.Composer, yaml._yaml.CParser, yaml.constructor.SafeConstructor,
                   yaml.resolver.Resolver):
        """The bounded safe loader on libyaml's scanner and parser (events), with the same composer and
        constructors as :class:`_PyLoader`."""

        def __init__(self, stream: str) -> None:
            yaml._yaml.CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            self._start_bounds()

    _LOADERS.append(_CLoader)

# PyYAML follows YAML 1.1, where `1e-3` (no dot) is a string; users mean a float (YAML 1.2 agrees).
# YAML 1.1 also reads `2023-02-30` as a date (and fails on it); no spec value is a date, so such a value
# stays the text it is (YAML 1.2's core schema has no timestamps either). An explicit !!timestamp still works.
_RESOLVERS = {k: [r for r in v if r[0] != "tag:yaml.org,2002:timestamp"]
              for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _cls in _LOADERS:
    _cls.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    _cls.yaml_implicit_resolvers = {k: list(v) for k, v in _RESOLVERS.items()}
    _cls.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
_Loader = _LOADERS[-1]

_CONTROL = yaml.reader.Reader.NON_PRINTABLE
_CONTROL_NAMES = {"\x00": "NUL", "\x1b": "ESC", "\x7f": "DEL", "\x08": "backspace", "\x0c": "form feed"}


def _control_character(text: str, file: str) -> Issue | None:
    """A located issue for the first character YAML does not allow (NUL and other control characters)."""
    m = _CONTROL.search(text)
    if m is None:
        return None
    c = m.group()
    line = text.count("\n", 0, m.start()) + 1
    column = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
    name = _CONTROL_NAMES.get(c, "a control character")
    return Issue(f"YAML: the character U+{ord(c):04X} ({name}) is not allowed in a YAML file", (),
                 "remove it (the file may be binary or damaged, or saved in an encoding other than UTF-8)",
                 file, line, column)


def _walk_marks(node: yaml.Node, path: KeyPath, out: dict[KeyPath, tuple[int, int]], loader: Any) -> None:
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


def _char_at(text: str, mark: Any) -> str | None:
    lines = text.split("\n")
    if mark is None or not 0 <= mark.line < len(lines) or not 0 <= mark.column < len(lines[mark.line]):
        return None
    return lines[mark.line][mark.column]


def load_yaml_text(text: str, file: str = "<string>") -> tuple[Any, Marks]:
    """Parse YAML text safely; every YAML problem (syntax, duplicate or non-scalar keys, a value its tag
    cannot build, control characters, nesting or aliases past :mod:`layerforge.limits`) becomes a located
    SpecError."""
    marks = Marks(file=file)
    bad = _control_character(text, file)
    if bad is not None:
        raise SpecError([bad])
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
        elif "'\\t'" in msg or _char_at(text, mark) == "\t":  # "found character '\t' that cannot start any token"
            msg = "tabs are not allowed in YAML (a tab character is here)"
            hint = "indent and separate with spaces instead of tabs (most editors can convert tabs to spaces)"
        elif any(k in msg for k in ("aliases expand", "recursive alias", "nested more than", "nesting depth")):
            hint = "write the values out, or share fewer and smaller ones with anchors (&name) and aliases (*name)"
        elif "is not a valid" in msg:
            hint = "fix the value, or remove its explicit !!tag"
        elif "a key must be" in msg:
            hint = "use a name as the key (keys like {a: 1}: or ? [a, b] are not used by layerforge)"
        raise SpecError([
            Issue(f"YAML: {msg}", (), hint, file, mark.line + 1 if mark else None, mark.column + 1 if mark else None)
        ]) from None
    except yaml.YAMLError as e:  # unmarked YAML errors (a reader error the scan above did not see)
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
        text = read_bytes(p, MAX_SPEC_BYTES).decode("utf-8")
    except TooLarge as e:
        raise SpecError([Issue(f"{p} is {e.size:,} bytes, more than a spec may be ({MAX_SPEC_BYTES:,} bytes)", (),
                               "is this the right file? a spec is a few kilobytes of YAML", str(p))]) from None
    except NotARegularFile as e:
        raise SpecError([Issue(f"cannot read {p}: it is {e.kind}, not a regular file", (),
                               "give the path of a YAML file", str(p))]) from None
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
        value = load_yaml_text(raw, "--set")[0] if raw.strip() else None
    except SpecError:  # not YAML (or not safe YAML): the text itself
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
