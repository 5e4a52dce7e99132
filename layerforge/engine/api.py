"""``train``: from a spec (file, dict or Spec) or a run directory to a trained model and a run directory.

This is the glue between the front door (:mod:`layerforge.build`: spec, graph, seeded model), the data
sources and the :class:`Trainer`. The trainer itself takes a ready DataBundle, so tests and notebooks can
pass tensors directly.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import Issue, SpecError, UsageError
from .events import Callback, TrainResult
from .logs import make_loggers
from .rundir import DATA, RUN, RunDir

if TYPE_CHECKING:
    from ..data.bundle import DataBundle
    from ..graph import Graph
    from ..spec.schema import Spec


def load_bundle(spec: "Spec", graph: "Graph") -> "DataBundle":
    """The spec's data (``data:`` section) fitted to its model, as a DataBundle."""
    if spec.data is None:
        raise SpecError([Issue("the spec has no data: section, so there is nothing to train on", ("data",),
                               "add e.g. data: {dataset: digits} (see docs/data.md), or pass data= in Python",
                               spec.source)])
    from ..build import data_facts
    from ..data import load_data

    return load_data(spec, data_facts(graph))


def data_info(bundle: "DataBundle") -> dict[str, Any]:
    """What predict/evaluate need to know about the data, JSON-safe."""
    meta = {k: v for k, v in (bundle.meta or {}).items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}
    return {"task": bundle.task, "num_classes": bundle.num_classes, "class_names": bundle.class_names,
            "input_shapes": {k: list(v) for k, v in (bundle.input_shapes or {}).items()}, "meta": meta}


def head_info(head: Any) -> dict[str, Any]:
    """The model's head as data.json records it (evaluate and predict read it back)."""
    return {"kind": head.kind, "out_shape": list(head.out_shape), "num_classes": head.num_classes, "loss": head.loss}


def train(spec: Any = None, *, data: "DataBundle | None" = None, overrides: list[str] | None = None,
          out: str | Path | None = None, resume: str | Path | None = None, callbacks: Iterable[Callback] = (),
          plugins: list[str] | None = None, save: bool = True, trust_plugins: bool = False) -> TrainResult:
    """Train a spec's model; see :func:`layerforge.train` for the arguments. The run directory is held
    (:meth:`RunDir.locked`) for the whole training, so a second ``--resume`` of it is refused."""
    with contextlib.ExitStack() as held:
        return _train(spec, data, overrides, out, resume, callbacks, plugins, save, trust_plugins, held)


def _train(spec: Any, data: "DataBundle | None", overrides: list[str] | None, out: str | Path | None,
           resume: str | Path | None, callbacks: Iterable[Callback], plugins: list[str] | None, save: bool,
           trust_plugins: bool, held: contextlib.ExitStack) -> TrainResult:
    from ..build import load, module
    from .distributed import env_world
    from .init_from import apply_init_from, write_report
    from .trainer import Trainer

    rank, world, local_rank = env_world()
    main = rank == 0  # only rank 0 writes the run directory and reports
    if resume is not None:
        if spec is not None:
            raise UsageError("give either a spec or resume=RUN_DIR, not both",
                             hint="a resumed run reads its spec from the run directory")
        _check_resume_overrides(overrides)
        run = RunDir.open(resume, verify=False)
        if main:
            held.enter_context(run.locked())  # before reading: a training that holds it may be writing
        run.verify()
        spec_obj, graph = run.load_spec(overrides, plugins, trust_plugins=trust_plugins)
        if overrides and main:
            run.write_spec(spec_obj)
        if main:
            run.update_run(resumed=[*run.read_json(RUN).get("resumed", []), _now()])
    else:
        if spec is None:
            raise UsageError("nothing to train: give a spec (a YAML path, a dict or a Spec)")
        spec_obj, graph = load(spec, overrides, plugins, trust_plugins=trust_plugins)
        run = None
        if save and main and out is not None:
            RunDir.check_new(out)  # refuse an occupied --out before any work
    callbacks = [*callbacks, *make_loggers(spec_obj)] if main else ()  # train.log: tensorboard, csv
    device = None
    if world > 1:
        from ..runtime import resolve_device
        from .distributed import init

        dev = resolve_device(spec_obj.train.device)
        device = f"cuda:{local_rank}" if dev.type == "cuda" else "cpu"
        init(dev.type)
    bundle = data if data is not None else load_bundle(spec_obj, graph)
    model = module(spec_obj, graph)
    # A new run may start from a trained run's weights; a resumed one continues from its own checkpoint.
    init_report = apply_init_from(spec_obj, model) if resume is None else None
    marks = spec_obj.marks
    trainer = Trainer(model, bundle, spec_obj.train, seed=spec_obj.seed, name=spec_obj.name,
                      out_shape=tuple(graph.output_shapes[0]) if len(graph.outputs) == 1 else None,
                      run=run if main else None, callbacks=callbacks if main else (), source=spec_obj.source,
                      rank=rank, world=world, device=device, locate=marks.locate if marks is not None else None)
    if resume is None and save and main:
        # Only now, with the data loaded and checked against the model, does the run directory appear.
        run = RunDir.create(spec_obj.train.out, spec_obj.name, exact=out)  # train.out is relative to the cwd
        held.enter_context(run.locked())
        run.write_spec(spec_obj)
        run.write_json(RUN, {"name": spec_obj.name, "created": _now(), "config": spec_obj.source,
                             "base_dir": str(spec_obj.base_dir), "argv": sys.argv, "status": "created"})
        run.write_json(DATA, {**data_info(bundle), "head": head_info(trainer.head), "base_dir": str(spec_obj.base_dir)})
        run.save_transform(bundle.transform.state_dict())
        if init_report is not None:
            write_report(run.path, init_report)
            run.update_run(init_from={"run": init_report.run, "checkpoint": init_report.checkpoint,
                                      "loaded": len(init_report.loaded), "absent": init_report.absent,
                                      "mismatched": sorted({m["layer"] for m in init_report.mismatched})})
        trainer.run = run
    if init_report is not None:
        trainer.notes.append(init_report.line())
    if resume is not None:
        trainer.load(run.last)
        if trainer.epoch >= spec_obj.train.epochs and not trainer._resume_step:
            raise UsageError(f"the run in {run.path} already finished its {spec_obj.train.epochs} epochs",
                             hint=f"train longer with --resume {run.path} --set train.epochs={spec_obj.train.epochs + 10}")
    return trainer.fit()


def _check_resume_overrides(overrides: list[str] | None) -> None:
    """On resume only train.* may change (the model and data must stay those of the checkpoint)."""
    from ..spec.loader import parse_override

    for item in overrides or []:
        path, _ = parse_override(item)
        if path[0] != "train":
            raise UsageError(f"--set may only change train.* when resuming (--set {item} changes '{path[0]}')",
                             hint="start a new run to change the model, data, seed or name")


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")
