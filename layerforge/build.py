"""The front door: from a spec to a validated Spec, its shape-checked Graph and a seeded torch module.

::

    path | mapping | Spec   (+ --set overrides, plugin files)
      ── load ──▶  (Spec, Graph)   plugins loaded, schema and layer parameters, references, cycles, shapes,
                                   the size check, the train rules (loss, metrics, monitor, output
                                   activation) and, when asked, a quick look at the data
      ── module ──▶ torch.nn.Module  weights drawn from the spec's seed

Every command and library function that starts from a spec enters here: the ``layerforge`` facade, the
engine (train, evaluate, predict, resume), analysis (summary, profile) and the CLI. Nothing else plans a
graph, seeds a module or loads plugins. Problems are raised as one located :class:`SpecError`; problems
that train but probably not as meant are :class:`SpecWarning` warnings (Python's ``warnings``).
"""
from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence, Union

from .errors import DataError, Issue, ShapeError, SpecError, SpecWarning
from .graph import BuildRefused, Graph, build_module, param_counts, plan, reserved_names
from .spec.blocks import merge_repeats
from .spec.loader import Marks, apply_overrides, load_yaml
from .spec.schema import Spec
from .spec.validate import validate_mapping
from .text import human_bytes

if TYPE_CHECKING:
    from torch import nn

    from .data.fit import ModelFacts
    from .plugins import PluginFile

SpecSource = Union[str, "os.PathLike[str]", Mapping[str, Any], Spec]


def load(source: SpecSource | tuple[Spec, Graph], overrides: Sequence[str] | None = None,
         plugins: Sequence[str | os.PathLike[str]] | None = None, *, check_data: bool = False,
         base_dir: str | os.PathLike[str] | None = None, train_rules: bool = True,
         marks: Marks | None = None, trust_plugins: bool = False,
         pinned_plugins: bool = False) -> tuple[Spec, Graph]:
    """A validated Spec and its Graph, from a YAML path, a mapping or a Spec (a Spec is validated again
    from the mapping it came from, so ``overrides`` apply to it too).

    ``overrides``: ``--set`` items (``"train.epochs=5"``, ``"model.layers.logits.units=12"``).
    ``plugins``: extra plugin files, loaded before the spec's own ``plugins:``.
    ``check_data``: also read the first samples of the ``data:`` section and check them against the
    model (what ``layerforge validate`` does unless ``--no-data``). ``base_dir``: where relative data
    paths start (default: the spec file's folder). ``train_rules=False`` skips the train section's
    rules (for a run reopened to evaluate or predict: they held when it trained). A ``(Spec, Graph)`` pair
    from an earlier call is returned as it is when there is nothing to apply. ``marks``: the file positions of
    a mapping ``source`` (a mapping made from a loaded file, e.g. a search trial's: errors then point into
    that file, and its folder is where relative paths start).

    Plugins: a ``plugins:`` entry that pins a sha256 is imported only if the file still has it;
    ``pinned_plugins`` (a run directory's spec) refuses entries without one; ``trust_plugins`` imports
    either anyway, with a warning. ``--plugins`` files are the caller's own choice and always imported.
    """
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[0], Spec):
        if not overrides and not plugins and not check_data and base_dir is None:
            return source
        source = source[0]
    raw, marks, inherited_base, inherited_plugins = _mapping(source, marks)
    raw = apply_overrides(raw, list(overrides or []), marks)
    files = load_plugins(raw, marks, [*inherited_plugins, *(plugins or [])], trust=trust_plugins, pinned=pinned_plugins)
    spec = validate_mapping(raw, marks)
    marks = spec.marks  # they also locate the layers of expanded blocks at their definitions
    spec._plugin_files = files
    spec._base_dir = Path(base_dir).resolve() if base_dir is not None else inherited_base
    graph, errs = plan(spec.model.input_shapes(), spec.model.layers, spec.model.output_names(), marks.locate)
    if errs or graph is None:
        raise SpecError(merge_repeats(errs))
    check_layer_names(graph, marks)
    check_model_size(graph, marks)
    if train_rules:
        check_rules(spec, graph, marks)
    if check_data:
        check_spec_data(spec, graph, marks)
    return spec, graph


def module(spec: Spec, graph: Graph, seed: int | None = None) -> "nn.Module":
    """The model as an ordinary ``torch.nn.Module`` (submodules named after the spec's layers), its weights
    drawn after seeding everything with ``seed`` (default: the spec's seed): the one seeded build."""
    from .runtime import seed_everything

    seed_everything(spec.seed if seed is None else seed)
    return build_module(graph)


def build(source: SpecSource | tuple[Spec, Graph], overrides: Sequence[str] | None = None,
          plugins: Sequence[str | os.PathLike[str]] | None = None, *,
          seed: int | None = None) -> tuple[Spec, Graph, "nn.Module"]:
    """:func:`load` then :func:`module`: the spec, its graph and the seeded model."""
    spec, graph = load(source, overrides, plugins)
    return spec, graph, module(spec, graph, seed)


def data_facts(graph: Graph) -> "ModelFacts":
    """What the data must fit (input shapes, integer-id inputs and their ranges, the output shape), for
    :func:`layerforge.data.load_data` and friends, which never plan a graph themselves."""
    from .data.fit import ModelFacts

    single = len(graph.outputs) == 1
    return ModelFacts(dict(graph.inputs), graph.integer_inputs(), tuple(graph.output_shapes[0]) if single else None)


# ---------------------------------------------------------------------------------------------
# Steps of load
# ---------------------------------------------------------------------------------------------
def _mapping(source: SpecSource, marks: Marks | None = None) -> tuple[Any, Marks, Path | None, list[Path]]:
    """The raw mapping, its file positions, and what a Spec source carries over: its base folder and the
    plugin files it was loaded with (``--plugins`` ones are not in its mapping)."""
    if isinstance(source, Spec):
        raw = copy.deepcopy(source.raw) if isinstance(source.raw, dict) else source.model_dump(mode="json",
                                                                                                exclude_none=True)
        marks = copy.deepcopy(source.marks) if source.marks is not None else Marks(file=source.source or "<spec>")
        return raw, marks, source._base_dir, [f.path for f in source.plugin_files]
    if isinstance(source, Mapping):
        return copy.deepcopy(dict(source)), marks or Marks(file="<dict>"), None, []
    if isinstance(source, (str, os.PathLike)):
        raw, marks = load_yaml(source)
        return raw, marks, None, []
    raise TypeError(f"expected a YAML path, a mapping or a Spec, got {type(source).__name__}")


TRUST_HINT = "pass --trust-plugins (trust_plugins=True in Python) to import it as it is now"


def _refuse_or_warn(marks: Marks, j: int, problem: str, hint: str, trust: bool) -> None:
    """A plugins: entry layerforge will not import: an error, or with ``trust`` a warning and imported."""
    if not trust:
        raise SpecError([marks.locate(("plugins", j), problem + ", so layerforge does not import it", hint)])
    warn(marks.locate(("plugins", j), problem + "; imported anyway (--trust-plugins)", hint))


def load_plugins(raw: Any, marks: Marks, extra: Sequence[str | os.PathLike[str]] | None = None, *,
                 trust: bool = False, pinned: bool = False) -> list["PluginFile"]:
    """Load entry-point plugins, then ``extra`` files, then the spec's ``plugins:`` (relative to the spec's
    folder). A ``plugins:`` entry that pins a sha256 is imported only if the file's content still has that
    hash (the bytes hashed are the bytes run); with ``pinned`` (a run's spec) every entry must pin one.
    ``trust`` imports a changed or unpinned file anyway, with a warning."""
    from .plugins import load_entry_points, load_plugin_file, sha256_of

    load_entry_points()
    files = [load_plugin_file(p) for p in extra or []]
    base = Path(marks.file).parent if marks.file and not marks.file.startswith("<") else Path.cwd()
    entries = raw.get("plugins") if isinstance(raw, dict) else None
    for j, entry in enumerate(entries if isinstance(entries, list) else []):
        path, recorded = (entry, None) if isinstance(entry, str) else (
            (entry.get("path"), entry.get("sha256")) if isinstance(entry, dict) else (None, None))
        if not isinstance(path, str) or not (recorded is None or isinstance(recorded, str)):
            continue  # the schema reports it
        where = marks.locate(("plugins", j), "")
        file = Path(path) if Path(path).is_absolute() else base / path
        current = None
        if recorded is not None:
            try:
                current = sha256_of(file)
            except OSError:
                current = None  # load_plugin_file says what is wrong with the file
        if recorded is None and pinned:
            _refuse_or_warn(marks, j, f"plugin file {file} is not pinned by a sha256: this run was not trained with it",
                            TRUST_HINT, trust)
        elif current is not None and current != recorded:
            _refuse_or_warn(marks, j, f"plugin file {file} has changed since it was recorded (sha256 {recorded[:12]}… "
                            f"then, {current[:12]}… now)",
                            "restore the file to reproduce the recorded results, or " + TRUST_HINT, trust)
        files.append(load_plugin_file(file, where=where, sha256=current))
    return list({f.path: f for f in files}.values())


def warn(issue: Issue) -> None:
    """Emit a located :class:`SpecWarning` (the CLI prints it as one line with its hint)."""
    warnings.warn(SpecWarning(issue), stacklevel=3)


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 40


def check_layer_names(graph: Graph, marks: Marks) -> None:
    """Refuse a layer named like an attribute of the module that holds the layers (``update``, ``forward``,
    ``training``, ...): torch could not build it, so validate says so first."""
    taken = reserved_names()
    issues = [marks.locate(("model", "layers", n.index, "name"),
                           f"layer name '{n.name}' is taken by torch (an attribute of nn.ModuleDict)",
                           f"rename the layer, e.g. '{n.name}_layer'", n.layer.label())
              for n in graph.nodes if n.name in taken]
    if issues:
        raise SpecError(issues)


def check_model_size(graph: Graph, marks: Marks, bytes_per_param: int = 4) -> None:
    """Refuse a model whose parameters alone, one layer's output for one sample, or what a layer keeps for
    the backward pass of one sample (its ``check_memory``) cannot fit in this machine's memory, and a layer
    torch cannot build or that creates more weight tensors than :data:`~layerforge.graph.MAX_TENSORS_PER_LAYER`.
    Output sizes are exact integers from the shape walk, checked before anything is built; parameters are
    counted on the meta device (nothing is allocated), and the count stops as soon as it passes the limit,
    so a huge layer is refused in milliseconds."""
    limit = _physical_memory()
    issues = []
    for n in graph.nodes:
        try:
            n.layer.check_memory(n.in_shapes, limit)
        except ShapeError as e:
            issues.append(marks.locate(("model", "layers", n.index), e.message, e.hint, n.layer.label()))
    for n in graph.nodes:
        act = n.out_elements * bytes_per_param  # all its time steps (spiking layers)
        if act > limit:
            shape = f"{n.out_shape}" + (f" × {n.out_steps} time steps" if n.out_steps > 1 else "")
            issues.append(marks.locate(("model", "layers", n.index),
                                       f"one sample's output of this layer, {shape}, needs {human_bytes(act)} "
                                       f"({act:,} bytes), more than this machine's {human_bytes(limit)}",
                                       "reduce the layer's size or the input shape", n.layer.label()))
    if issues:
        raise SpecError(issues)
    try:
        counts = param_counts(graph, max_elements=limit // bytes_per_param)
    except BuildRefused as e:
        n = e.node
        message = e.message
        if "pass" in message and "numbers" in message:
            message = (f"the model needs more than {human_bytes(limit)} ({limit:,} bytes) for its fp32 parameters "
                       f"alone, more than this machine's {human_bytes(limit)} of memory ({message})")
        raise SpecError([marks.locate(("model", "layers", n.index), message, e.hint, n.layer.label())]) from None
    total = sum(c[0] for c in counts.values()) * bytes_per_param
    if total > limit:  # pragma: no cover - the guarded count stops first
        raise SpecError([marks.locate(("model",), f"the model needs {human_bytes(total)} for its parameters, "
                                      f"more than this machine's {human_bytes(limit)}", "reduce units/filters")])


def check_rules(spec: Spec, graph: Graph, marks: Marks) -> None:
    """The train section against the model and the data's task (see :mod:`layerforge.engine.rules`):
    errors are raised together, warnings emitted. Runs for specs that can be trained (a ``data:`` or
    ``train:`` section) whose model has one output."""
    from .data.schema import DATASET_TASKS
    from .engine import rules

    if (spec.data is None and not (isinstance(spec.raw, dict) and "train" in spec.raw)) or len(graph.outputs) != 1:
        return
    out = graph.outputs[0]
    if out in graph.inputs:
        return
    node = graph.node(out)
    at = ("model", "layers", node.index)
    train, data = spec.train, spec.data
    task = (data.task or DATASET_TASKS.get(data.dataset or "")) if data is not None else None
    kind = rules.head_kind(train.loss, task, node.out_shape)
    has_val = None if data is None else (data.val_fraction > 0 or data.val_path is not None)
    problems = []
    if kind is not None:
        n_classes = node.out_shape[-1] if kind == "class" else None
        metrics = list(train.metrics) if train.metrics is not None else rules.default_metrics(task, kind)
        problems += rules.loss_problems(train.loss, kind, node.out_shape, at)
        problems += rules.metric_problems(train.metrics or [], kind, n_classes, train.loss.name if train.loss else
                                          {"class": "cross_entropy", "binary": "bce", "real": "mse"}[kind])
    else:  # only the data can tell the head: allow every metric a default could bring
        metrics = list(train.metrics) if train.metrics is not None else ["accuracy", "perplexity", "mae", "rmse", "r2"]
    problems += rules.monitor_problems(train, metrics, has_val)
    act = node.layer.output_activation()
    guess = kind or ("class" if act in ("softmax", "log_softmax") and task != "regression" else None)
    activation = rules.output_activation_problem(act, guess, train.loss.name if train.loss else None, at, node.name)
    if activation is not None:
        problems.append(activation)
    label = node.layer.label()
    located = [(p, marks.locate(p.path, p.message, p.hint, label if p.path[:2] == ("model", "layers") else None))
               for p in problems]
    errors = [issue for p, issue in located if not p.warning]
    if errors:
        raise SpecError(errors)
    for _, issue in located:
        warn(issue)


def check_spec_data(spec: Spec, graph: Graph, marks: Marks) -> list[str]:
    """A quick look at the data (see :func:`layerforge.data.check_data`); a DataError becomes a SpecError
    at the key to fix (``data.path``, ``data.target``, ``model.input_shape``, the output layer)."""
    from .data import check_data

    try:
        return check_data(spec, data_facts(graph))
    except DataError as e:
        path = tuple(e.path or ("data",))
        layer = None
        if path == ("model", "outputs") and len(graph.outputs) == 1 and graph.outputs[0] not in graph.inputs:
            node = graph.node(graph.outputs[0])
            path, layer = ("model", "layers", node.index), node.layer.label()
        raise SpecError([marks.locate(path, e.message, e.hint, layer)]) from None
