"""The search space: dotted spec paths → values to try, checked against the spec before any trial.

A key such as ``model.layers.conv1.filters`` is addressed like ``--set`` (list entries by index or, for
layers, by name) and resolved once against the loaded spec, so later layer drops cannot shift it. Each
entry is then probed on its own: the spec with the entry's bounds or each of its categories put in is
validated (schema and layer parameters, torch-free), and whatever that field refuses becomes a located
error at the entry (an unknown key, a value out of the field's range, a float for an integer field).
``when:`` must name another entry and a value it can take; dependencies may not form a cycle.

A sample is applied to a copy of the mapping: values are set (shorter paths first, so a whole layer
is replaced before its fields are), then ``null`` choices remove their list entry or key (a dropped
layer; later layers then read the previous layer's output, and a reference to the dropped one makes
the trial invalid, as any spec would be).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Protocol

from ..errors import Issue, KeyPath, SpecError, format_path
from ..spec.loader import Marks
from ..spec.validate import validate_mapping
from ..text import suggest
from .schema import ParamSpec, category_label

if TYPE_CHECKING:
    from ..spec.schema import Spec

_PROBE_FRACTION = 0.37  # an interior point that is not a whole number: catches floats aimed at int fields


class Sampler(Protocol):
    """The part of ``optuna.Trial`` a space samples with (a fake one does for tests)."""

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float: ...

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass(frozen=True)
class Param:
    """One entry of the space: its key as written (also Optuna's parameter name) and its resolved path."""

    key: str
    path: KeyPath
    spec: ParamSpec

    def sample(self, trial: Sampler) -> Any:
        s = self.spec
        if s.space == "choice":
            cats = list(s.categories or [])
            label = trial.suggest_categorical(self.key, [category_label(c) for c in cats])
            return self.value_of(label)
        assert s.lower is not None and s.upper is not None
        if s.space == "int":
            return trial.suggest_int(self.key, int(s.lower), int(s.upper), step=int(s.step or 1), log=s.log)
        return trial.suggest_float(self.key, s.lower, s.upper, step=s.step, log=s.space == "loguniform")

    def value_of(self, recorded: Any) -> Any:
        """The spec value behind what Optuna recorded (a category's label → the category itself)."""
        if self.spec.space != "choice":
            return recorded
        for c in self.spec.categories or []:
            if category_label(c) == recorded:
                return copy.deepcopy(c)
        raise KeyError(f"{recorded!r} is not a category of {self.key}")

    def probes(self) -> list[Any]:
        s = self.spec
        if s.space == "choice":
            return list(s.categories or [])
        assert s.lower is not None and s.upper is not None
        if s.space == "int":
            return [int(s.lower), int(s.upper)]
        inner = (math.exp(math.log(s.lower) + _PROBE_FRACTION * (math.log(s.upper) - math.log(s.lower)))
                 if s.space == "loguniform" else s.lower + _PROBE_FRACTION * (s.upper - s.lower))
        return [s.lower, s.upper] + ([inner] if s.step is None else [])


class Space:
    """The parsed ``search.space`` of a spec: :meth:`sample` a trial, :meth:`apply` a sample to the spec."""

    def __init__(self, base: dict[str, Any], marks: Marks, params: list[Param]) -> None:
        self.base = base  # the loaded mapping (after --set), search section included
        self.marks = marks
        self.params = params  # in sampling order: every when-dependency before its dependents

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.params]

    # --- parsing ------------------------------------------------------------------------------
    @classmethod
    def parse(cls, spec: "Spec") -> "Space":
        """Resolve and check every entry of ``spec.search.space``; raise one SpecError with every problem,
        each at its entry's file:line:col."""
        if spec.search is None:
            raise SpecError([Issue("the spec has no search: section", ("search",),
                                   "add search: {objective: val_accuracy, space: {...}} (see docs/search.md)",
                                   spec.source)])
        base = spec.raw if isinstance(spec.raw, dict) else {}
        marks = spec.marks if spec.marks is not None else Marks(file=spec.source or "<spec>")
        issues: list[Issue] = []
        params: list[Param] = []
        for key, pspec in spec.search.space.items():
            at = ("search", "space", key)
            path, problem = resolve(base, key)
            if problem is not None:
                issues.append(marks.locate(at, f"unknown path '{key}': {problem[0]}", problem[1]))
                continue
            param = Param(key, path, pspec)
            probe_issues = _probe(base, marks, param)
            issues += [marks.locate(at, m, h) for m, h in probe_issues]
            params.append(param)
        issues += _check_when(spec.search.space, {p.key for p in params}, marks)
        if issues:
            raise SpecError(issues)
        return cls(base, marks, _sampling_order(params, spec.search.space, marks))

    # --- sampling and applying ----------------------------------------------------------------
    def sample(self, trial: Sampler) -> dict[str, Any]:
        """Values for one trial (key → spec value); a parameter whose ``when:`` does not hold is left out."""
        values: dict[str, Any] = {}
        for p in self.params:
            if self.active(p, values):
                values[p.key] = p.sample(trial)
        return values

    def active(self, param: Param, values: Mapping[str, Any]) -> bool:
        for other, wanted in (param.spec.when or {}).items():
            if other not in values:
                return False
            options = wanted if isinstance(wanted, list) else [wanted]
            if category_label(values[other]) not in [category_label(w) for w in options]:
                return False
        return True

    def values_of(self, recorded: Mapping[str, Any]) -> dict[str, Any]:
        """Spec values from the parameters Optuna recorded for a trial (labels back to categories)."""
        by_key = {p.key: p for p in self.params}
        return {k: by_key[k].value_of(v) for k, v in recorded.items() if k in by_key}

    def apply(self, values: Mapping[str, Any], marks: Marks | None = None, origin: str = "search") -> dict[str, Any]:
        """The base mapping with ``values`` put in and the ``search:`` section removed. When ``marks`` (a copy of
        the base's) is given it is updated to match: entries after a removed list item move up, and every
        sampled path is marked as coming from ``origin`` (errors then name the sampled value)."""
        raw = copy.deepcopy(self.base)
        raw.pop("search", None)
        chosen = [p for p in self.params if p.key in values]
        removals: list[KeyPath] = []
        for p in sorted(chosen, key=lambda p: len(p.path)):
            value = values[p.key]
            if marks is not None:
                marks.overridden[p.path] = f"{origin}: {p.key}={'null' if value is None else category_label(value)}"
            if value is None:
                removals.append(p.path)
            else:
                _put(raw, p.path, copy.deepcopy(value))
        for path in sorted(removals, key=lambda q: (len(q), q[-1] if isinstance(q[-1], int) else -1), reverse=True):
            if _remove(raw, path) and marks is not None and isinstance(path[-1], int):
                _shift_marks(marks, path)
        return raw


# ---------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------
def split_key(key: str) -> list[str | int]:
    """``model.layers.3.units`` → ['model', 'layers', 3, 'units'] (the ``--set`` addressing)."""
    return [int(p) if p.lstrip("-").isdigit() else p for p in key.split(".")]


def resolve(data: Any, key: str) -> tuple[KeyPath, tuple[str, str | None] | None]:
    """The key's path with layer names turned into indices, or (partial path, (problem, hint)). Keys missing
    from a mapping are fine (like ``--set``, the entry is created; the probe asks the schema about it)."""
    parts = split_key(key)
    if any(p == "" for p in parts):
        return (), ("a key part is empty", "write dotted keys like train.optimizer.lr")
    node: Any = data
    out: list[str | int] = []
    for i, part in enumerate(parts):
        if isinstance(node, list):
            index, problem = _entry(node, part, tuple(out))
            if problem is not None:
                return tuple(out), problem
            out.append(index)
            node = node[index]
        elif isinstance(node, dict):
            out.append(part)
            node = node.get(part)
        elif node is None:
            out.extend(parts[i:])  # created on use
            break
        else:
            return tuple(out), (f"{format_path(out)} is a value ({node!r}), it has no '{part}'", None)
    return tuple(out), None


def _entry(items: list, part: str | int, at: KeyPath) -> tuple[int, tuple[str, str | None] | None]:
    """A list entry by index, or by its ``name`` (layers)."""
    if isinstance(part, int):
        if -len(items) <= part < len(items):
            return part % len(items), None
        return 0, (f"index {part} is out of range: {format_path(at)} has {len(items)} entries", None)
    named = {e.get("name"): i for i, e in enumerate(items) if isinstance(e, dict) and isinstance(e.get("name"), str)}
    if part in named:
        return named[part], None
    hint = suggest(part, list(named)) or (f"the names are: {', '.join(named)}" if named
                                          else "no entry has a name: use an index from 0")
    return 0, (f"no entry named '{part}' in {format_path(at)}", hint)


def _put(data: dict, path: KeyPath, value: Any) -> None:
    node: Any = data
    for part, nxt in zip(path[:-1], path[1:]):
        if isinstance(node, list):
            node = node[part]  # type: ignore[index]
            continue
        if node.get(part) is None:
            node[part] = [] if isinstance(nxt, int) else {}
        node = node[part]
    node[path[-1]] = value


def _remove(data: dict, path: KeyPath) -> bool:
    node: Any = data
    for part in path[:-1]:
        node = node[part] if isinstance(node, list) else node.get(part)
        if node is None:
            return False
    last = path[-1]
    if isinstance(node, list) and isinstance(last, int) and last < len(node):
        del node[last]
        return True
    if isinstance(node, dict) and last in node:
        del node[last]
        return True
    return False


def _shift_marks(marks: Marks, removed: KeyPath) -> None:
    """After ``removed`` (a list entry) is deleted, entries after it move up by one in the position tables."""
    prefix, index = removed[:-1], removed[-1]
    n = len(prefix)

    def moved(path: KeyPath) -> KeyPath | None:
        if len(path) <= n or tuple(path[:n]) != prefix or not isinstance(path[n], int):
            return path
        if path[n] == index:
            return None
        return (*prefix, path[n] - 1, *path[n + 1:]) if path[n] > index else path  # type: ignore[operator]

    for table in (marks.positions, marks.overridden):
        items = [(moved(k), v) for k, v in table.items()]
        table.clear()
        table.update({k: v for k, v in items if k is not None})


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------
def _probe(base: dict, marks: Marks, param: Param) -> list[tuple[str, str | None]]:
    """Validate the spec with each probe value of ``param`` put in; the field-level problems found (at or below
    the parameter's path) as (message, hint). Problems that depend on other values show up per trial instead."""
    space = Space(base, marks, [param])
    found: dict[tuple[str, str], tuple[str, str | None]] = {}
    for value in param.probes():
        try:
            validate_mapping(space.apply({param.key: value}), copy.deepcopy(marks))
        except SpecError as e:
            for issue in e.issues:
                if tuple(issue.path[:len(param.path)]) != tuple(param.path):
                    continue
                where = format_path(issue.path)
                if issue.message.startswith(("unknown key", "missing required key")) and param.spec.space != "choice":
                    message = f"unknown path: {where}: {issue.message}"
                else:
                    message = f"{category_label(value)!r} does not fit {where}: {issue.message}"
                found.setdefault((where, issue.message), (message, issue.hint or _hint(param, issue)))
    return list(found.values())


def _hint(param: Param, issue: Issue) -> str | None:
    if "valid integer" in issue.message and param.spec.space in ("uniform", "loguniform"):
        return "this field takes whole numbers: use space: int (with log: true for a log scale)"
    if param.spec.space != "choice":
        return "narrow lower/upper to what the field accepts"
    return None


def _check_when(space: Mapping[str, ParamSpec], keys: set[str], marks: Marks) -> list[Issue]:
    issues = []
    for key, pspec in space.items():
        for other, wanted in (pspec.when or {}).items():
            at = ("search", "space", key, "when", other)
            if other == key:
                issues.append(marks.locate(at, f"'{key}' cannot depend on itself", None))
            elif other not in space:
                issues.append(marks.locate(at, f"when: refers to '{other}', which is not a key of search.space",
                                           suggest(other, list(space)) or f"the keys are: {', '.join(space)}"))
            elif other in keys:
                options = wanted if isinstance(wanted, list) else [wanted]
                never = [w for w in options if not space[other].contains(w)]
                if never:
                    issues.append(marks.locate(at, f"'{other}' never takes the value {category_label(never[0])!r}, "
                                               f"so '{key}' would never be sampled",
                                               "give a value the other parameter can take (a list means any of them)"))
    return issues


def _sampling_order(params: list[Param], space: Mapping[str, ParamSpec], marks: Marks) -> list[Param]:
    """Declaration order, moved so that each parameter comes after those its ``when:`` reads; a cycle is an error."""
    by_key = {p.key: p for p in params}
    done: list[str] = []
    visiting: list[str] = []

    def visit(key: str) -> None:
        if key in done:
            return
        if key in visiting:
            cycle = " → ".join([*visiting[visiting.index(key):], key])
            raise SpecError([marks.locate(("search", "space", key, "when"), f"when: conditions form a cycle: {cycle}",
                                          "make one of them unconditional")])
        visiting.append(key)
        for other in (space[key].when or {}):
            if other in by_key:
                visit(other)
        visiting.pop()
        done.append(key)

    for p in params:
        visit(p.key)
    return [by_key[k] for k in done]
