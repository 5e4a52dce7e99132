"""``train``: from a spec (file, dict or Spec) or a run directory to a trained model and a run directory.

This is the glue between the spec, the data sources, the model builder and the :class:`Trainer`.
The trainer itself takes a ready DataBundle, so tests and notebooks can pass tensors directly.
"""
from __future__ import annotations

import copy
import datetime as _dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ..errors import Issue, SpecError, UsageError
from .events import Callback, TrainResult
from .rundir import RUN, SPEC, RunDir

if TYPE_CHECKING:
    from torch import nn

    from ..data.bundle import DataBundle
    from ..graph import Graph
    from ..spec.schema import Spec


def spec_base_dir(spec: "Spec") -> Path:
    """The folder that relative paths in a spec (data files, plugins) are relative to."""
    src = spec.source
    if src and not src.startswith("<"):
        return Path(src).resolve().parent
    return Path.cwd()


def load_bundle(spec: "Spec", base_dir: Path) -> "DataBundle":
    """The spec's data (``data:`` section) as a DataBundle."""
    if spec.data is None:
        raise SpecError([Issue("the spec has no data: section, so there is nothing to train on", ("data",),
                               "add e.g. data: {dataset: digits} (see docs/data.md), or pass data= in Python",
                               spec.source)])
    from ..data import load_data

    return load_data(spec, base_dir)


def build_for(spec: "Spec", graph: "Graph") -> "nn.Module":
    """The model, initialised from the spec's seed (the same weights as ``layerforge.build_model``)."""
    from ..graph import build_module
    from .device import seed_everything

    seed_everything(spec.seed)
    return build_module(graph)


def resolved_raw(spec: "Spec") -> dict[str, Any]:
    """The spec mapping a run directory saves: after overrides, plugin paths made absolute."""
    raw = copy.deepcopy(spec.raw) if isinstance(spec.raw, dict) else spec.model_dump(mode="json", exclude_none=True)
    base = spec_base_dir(spec)
    if isinstance(raw.get("plugins"), list):
        raw["plugins"] = [str((base / p).resolve()) if isinstance(p, str) and not Path(p).is_absolute() else p
                          for p in raw["plugins"]]
    return raw


def open_run_spec(run: RunDir, overrides: list[str] | None = None,
                  plugins: list[str] | None = None) -> tuple["Spec", "Graph", Path]:
    """Load a run's spec.yaml (with its original folder for relative data paths)."""
    from ..spec import load_spec

    info = run.read_json(RUN)
    spec, graph = load_spec(run.path / SPEC, overrides or [], plugins)
    base = Path(info.get("base_dir") or run.path)
    return spec, graph, base


def data_info(bundle: "DataBundle") -> dict[str, Any]:
    """What predict/evaluate need to know about the data, JSON-safe."""
    meta = {k: v for k, v in (bundle.meta or {}).items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}
    return {"task": bundle.task, "num_classes": bundle.num_classes, "class_names": bundle.class_names,
            "input_shapes": {k: list(v) for k, v in (bundle.input_shapes or {}).items()}, "meta": meta}


def train(spec: Any = None, *, data: "DataBundle | None" = None, overrides: list[str] | None = None,
          out: str | Path | None = None, resume: str | Path | None = None, callbacks: Iterable[Callback] = (),
          plugins: list[str] | None = None, save: bool = True) -> TrainResult:
    """Train a spec's model; see :func:`layerforge.train` for the arguments."""
    from ..spec import load_spec
    from .distributed import env_world
    from .trainer import Trainer

    rank, world, local_rank = env_world()
    main = rank == 0  # only rank 0 writes the run directory and reports
    if resume is not None:
        if spec is not None:
            raise UsageError("give either a spec or resume=RUN_DIR, not both",
                             hint="a resumed run reads its spec from the run directory")
        run = RunDir.open(resume)
        saved_raw = run.read_json(RUN).get("spec_raw")
        spec_obj, graph, base = open_run_spec(run, overrides, plugins)
        if overrides:
            _check_resume_overrides(spec_obj, saved_raw)
            if main:
                run.write_spec(resolved_raw(spec_obj))
        if main:
            run.update_run(resumed=[*run.read_json(RUN).get("resumed", []), _now()])
    else:
        if spec is None:
            raise UsageError("nothing to train: give a spec (a YAML path, a dict or a Spec)")
        if isinstance(spec, (str, Path)):
            spec_obj, graph = load_spec(spec, overrides, plugins)
        else:
            from .. import _as_spec

            spec_obj, graph = _as_spec(spec, overrides)
        base = spec_base_dir(spec_obj)
        run = None
        if save and main and out is not None:
            RunDir.check_new(out)  # refuse an occupied --out before any work
    device = None
    if world > 1:
        from .device import resolve_device
        from .distributed import init

        dev = resolve_device(spec_obj.train.device)
        device = f"cuda:{local_rank}" if dev.type == "cuda" else "cpu"
        init(dev.type)
    bundle = data if data is not None else load_bundle(spec_obj, base)
    model = build_for(spec_obj, graph)
    trainer = Trainer(model, bundle, spec_obj.train, seed=spec_obj.seed, name=spec_obj.name,
                      out_shape=tuple(graph.output_shapes[0]) if len(graph.outputs) == 1 else None,
                      run=run if main else None, callbacks=callbacks if main else (), source=spec_obj.source,
                      rank=rank, world=world, device=device)
    if resume is None and save and main:
        # Only now, with the data loaded and checked against the model, does the run directory appear.
        run = RunDir.create(spec_obj.train.out, spec_obj.name, exact=out)  # train.out is relative to the cwd
        raw = resolved_raw(spec_obj)
        run.write_spec(raw)
        run.write_json(RUN, {"name": spec_obj.name, "created": _now(), "config": spec_obj.source,
                             "base_dir": str(base), "argv": sys.argv, "status": "created", "spec_raw": raw})
        run.write_json("data.json", data_info(bundle))
        run.save_transform(bundle.transform.state_dict())
        trainer.run = run
    if resume is not None:
        trainer.load(run.last)
        if trainer.epoch >= spec_obj.train.epochs and not trainer._resume_step:
            raise UsageError(f"the run in {run.path} already finished its {spec_obj.train.epochs} epochs",
                             hint=f"train longer with --resume {run.path} --set train.epochs={spec_obj.train.epochs + 10}")
    return trainer.fit()


def _check_resume_overrides(spec: "Spec", saved_raw: Any) -> None:
    """On resume only train.* may change (the model and data must stay those of the checkpoint)."""
    raw = spec.raw if isinstance(spec.raw, dict) else {}
    if not isinstance(saved_raw, dict):
        return
    for key in set(raw) | set(saved_raw):
        if key != "train" and raw.get(key) != saved_raw.get(key):
            raise UsageError(f"--set may only change train.* when resuming (it changed '{key}')",
                             hint="start a new run to change the model, data, seed or name")


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")
