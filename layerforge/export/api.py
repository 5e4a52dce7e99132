"""``export_run``: a trained run directory to an ONNX, pt2 or safetensors file, checked before it is kept.

The run is opened through :func:`layerforge.engine.trained.load_run` (front door + RunDir). By default the
exported graph takes raw inputs: the saved standardisation runs inside it (``include_transform``); the
label names, the transform, the input/output names and shapes and the spec go into the file's metadata.

The file is written under a temporary name, then checked: loaded back by the runtime that will run it
(onnxruntime; ``torch.export.load``; the spec in the safetensors header rebuilt through the front door)
and run on real batches of the run's validation split (test or train when there is none; random inputs
when the data is gone), compared with the trained model in PyTorch. Only a file that matches within the
tolerance replaces ``out``; a mismatch is an :class:`ExportError` and the temporary file is removed.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DataError, ExportError, SpecError, UsageError
from .program import FORMATS, example_inputs, export_program, refuse_known

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..engine.trained import TrainedRun

SUFFIX = {"onnx": ".onnx", "pt2": ".pt2", "safetensors": ".safetensors"}
RUNTIME = {"onnx": "onnxruntime", "pt2": "torch.export.load", "safetensors": "safetensors + front door"}
CHECK_ROWS = 256  # validation samples compared at most (plus one single-sample batch)
MAX_BATCHES = 8  # a small fixed batch is checked on 8 batches at most
TRACE_BATCH = 2  # torch.export specialises sizes 0 and 1, so a dynamic batch is traced with 2


@dataclass
class ExportCheck:
    """How the exported file was checked against the trained model."""

    runtime: str  # what loaded and ran the file
    source: str  # "val split", "test split", "train split" or "random inputs"
    samples: int
    batches: int
    max_abs_diff: float  # max |exported − torch| over every output element checked
    max_abs_output: float  # max |torch output|, the scale the tolerance is relative to
    tolerance: float

    @property
    def limit(self) -> float:
        return self.tolerance * max(1.0, self.max_abs_output)

    def to_dict(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "source": self.source, "samples": self.samples, "batches": self.batches,
                "max_abs_diff": self.max_abs_diff, "max_abs_output": self.max_abs_output,
                "tolerance": self.tolerance, "limit": self.limit}


@dataclass
class ExportResult:
    path: Path
    format: str
    files: list[Path]
    bytes: int
    checkpoint: str
    epoch: int | None
    include_transform: bool
    dynamic_batch: bool
    batch_size: int | None  # the fixed batch size of a static-batch export
    opset: int | None  # ONNX only
    inputs: list[dict[str, Any]]  # name, shape (first axis "batch" or the fixed size), dtype
    outputs: list[dict[str, Any]]
    labels: list[str] | None
    check: ExportCheck
    notes: list[str] = field(default_factory=list)
    time_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "format": self.format, "files": [str(f) for f in self.files],
                "bytes": self.bytes, "checkpoint": self.checkpoint, "epoch": self.epoch,
                "include_transform": self.include_transform, "dynamic_batch": self.dynamic_batch,
                "batch_size": self.batch_size, "opset": self.opset, "inputs": self.inputs, "outputs": self.outputs,
                "labels": self.labels, "check": self.check.to_dict(), "notes": self.notes,
                "time_s": round(self.time_s, 3)}


def export_run(run_dir: str | Path, format: str = "onnx", *, checkpoint: str = "best", opset: int | None = None,
               dynamic_batch: bool = True, batch_size: int | None = None, include_transform: bool = True,
               out: str | Path | None = None, tolerance: float = 1e-4, plugins: list[str] | None = None) -> ExportResult:
    """Export a trained run (see the module docstring). ``out``: the file (default
    ``RUN_DIR/export/model.<format>``). ``tolerance``: the largest accepted difference from PyTorch, relative
    to the outputs' scale (``max|diff| ≤ tolerance · max(1, max|output|)``)."""
    import torch

    from ..engine.rundir import RunDir
    from ..engine.trained import load_run

    t0 = time.perf_counter()
    fmt = _check_args(format, opset, dynamic_batch, batch_size, tolerance)
    if fmt == "onnx":
        from .onnx_format import require_onnx

        require_onnx()  # before any work
    trained = load_run(run_dir, checkpoint, plugins)
    graph = trained.graph
    refuse_known(graph, fmt)
    path = Path(out) if out is not None else RunDir(trained.run_dir).exports / f"model{SUFFIX[fmt]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = include_transform and fmt != "safetensors"  # safetensors holds weights; the transform is metadata
    module = trained.predictor() if raw else trained.module
    notes: list[str] = []
    if fmt == "safetensors" and include_transform:
        notes.append("safetensors holds the model's weights (standardised inputs); the transform, labels and spec "
                     "are in its metadata")
    batch = batch_size or 1
    source, batches = check_batches(trained, raw, None if dynamic_batch else batch)
    meta = metadata(trained, fmt, raw, dynamic_batch, batch)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")  # torch.export.save wants the suffix
    written: list[Path] = [tmp]
    try:
        with torch.no_grad():
            loaded, written, opset_used = _write(fmt, trained, module, tmp, path, opset, dynamic_batch, batch, meta)
            check = compare(module, loaded, batches, fmt, source, tolerance)
        if opset is not None and opset_used != opset:
            notes.append(f"opset {opset} was asked for; the exporter wrote opset {opset_used}")
        if not check.max_abs_diff <= check.limit:  # NaN fails too
            raise ExportError(
                f"the exported {fmt} model does not compute what the trained model does: max |{fmt} − torch| = "
                f"{check.max_abs_diff:.3g} on {check.samples} samples of the {check.source}, over the limit "
                f"{check.limit:.3g} (tolerance {tolerance:g} × max(1, max |output| = {check.max_abs_output:.3g}))",
                hint="the file was not kept; a larger --tolerance accepts it (float32 kernels differ by ~1e-6 "
                     "relative), a large gap is a bug worth reporting")
        if written == [tmp]:
            os.replace(tmp, path)
            written = [path]
    except BaseException:
        for f in written:  # nothing unchecked is left behind (an earlier export at ``path`` stays)
            f.unlink(missing_ok=True)
        raise
    if source == "random inputs":
        notes.append("the run's data could not be loaded, so the check used random inputs")
    return ExportResult(path=path, format=fmt, files=written, bytes=sum(f.stat().st_size for f in written),
                        checkpoint=trained.checkpoint, epoch=trained.epoch, include_transform=raw,
                        dynamic_batch=dynamic_batch and fmt != "safetensors",
                        batch_size=None if dynamic_batch else batch, opset=opset_used,
                        inputs=meta["inputs"], outputs=meta["outputs"], labels=trained.label_names, check=check,
                        notes=notes, time_s=time.perf_counter() - t0)


def _check_args(fmt: str, opset: int | None, dynamic_batch: bool, batch_size: int | None, tolerance: float) -> str:
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format '{fmt}'", hint=f"use one of: {', '.join(FORMATS)}")
    if opset is not None and fmt != "onnx":
        raise UsageError(f"--opset applies to --format onnx, not {fmt}")
    if opset is not None and not 7 <= opset <= 30:
        raise UsageError(f"--opset {opset} is not an ONNX opset version", hint="use e.g. 18, 20 or 21 (default: the exporter's choice)")
    if batch_size is not None and (dynamic_batch or batch_size < 1):
        raise UsageError("--batch-size fixes the batch of a --static-batch export (a positive number)",
                         hint="add --static-batch, or leave --batch-size out for a dynamic batch")
    if not tolerance > 0:
        raise UsageError(f"--tolerance must be positive, got {tolerance}")
    return fmt


def _write(fmt: str, trained: "TrainedRun", module: "nn.Module", tmp: Path, path: Path, opset: int | None,
           dynamic_batch: bool, batch: int, meta: dict[str, Any]) -> tuple[Any, list[Path], int | None]:
    """Write the file (under ``tmp``) and load it back the way its users will. Returns (the loaded model as a
    callable, the files written, the ONNX opset or None)."""
    if fmt == "safetensors":
        from .torch_formats import rebuild, save_safetensors

        save_safetensors(trained.module, tmp, meta)
        return rebuild(tmp), [tmp], None
    inputs = example_inputs(trained.graph, TRACE_BATCH if dynamic_batch else batch)
    program = export_program(module, trained.module, trained.graph, inputs, fmt, dynamic_batch)
    if fmt == "pt2":
        from .torch_formats import load_pt2, save_pt2

        save_pt2(program, tmp, meta)
        return load_pt2(tmp)[0], [tmp], None
    return _onnx(program, trained, tmp, path, opset, dynamic_batch, meta)


def _onnx(program: Any, trained: "TrainedRun", tmp: Path, path: Path, opset: int | None, dynamic_batch: bool,
          meta: dict[str, Any]) -> tuple[Any, list[Path], int]:
    """Convert, save under ``tmp`` (at ``path`` itself when the weights need an external data file, whose
    name the model records), check with onnx.checker and open in onnxruntime."""
    from . import onnx_format

    onx = onnx_format.convert(program, trained.module, trained.graph, opset, [i["name"] for i in meta["inputs"]],
                              [o["name"] for o in meta["outputs"]], dynamic_batch)
    written = onnx_format.save(onx, path if onnx_format.needs_external_data(onx) else tmp, meta)
    opset_used = onnx_format.check(written[0])
    return _Session(onnx_format.session(written[0])), written, opset_used


class _Session:
    """An onnxruntime session called like a module (numpy in and out through torch tensors)."""

    def __init__(self, sess: Any) -> None:
        self.sess = sess

    def __call__(self, *inputs: "torch.Tensor") -> Any:
        import torch

        from .onnx_format import run

        outs = [torch.from_numpy(o) for o in run(self.sess, inputs)]
        return outs[0] if len(outs) == 1 else tuple(outs)


def check_batches(trained: "TrainedRun", raw: bool, static_batch: int | None
                  ) -> tuple[str, list[tuple["torch.Tensor", ...]]]:
    """Batches to compare on: up to CHECK_ROWS samples of the run's val split (else test, else train), raw
    (un-standardised) when the transform is inside the export. A dynamic batch is checked with one
    single-sample batch and batches of 64; a static one with up to MAX_BATCHES batches of its size. No data:
    random inputs."""
    import torch

    from ..engine.api import load_bundle

    try:
        bundle = load_bundle(trained.spec, trained.graph)
    except (DataError, SpecError):
        bundle = None
    split = next((s for s in ((bundle.val, bundle.test, bundle.train) if bundle else ()) if s is not None and len(s)), None)
    names = trained.input_names
    if split is None:
        source = "random inputs"
        n = max(CHECK_ROWS // 4, static_batch or 1)
        xs = list(example_inputs(trained.graph, n, seed=1))
    else:
        source = next(k for k in ("val", "test", "train") if getattr(bundle, k) is split) + " split"
        xs = [split.x[k] for k in names] if isinstance(split.x, dict) else [split.x]
        xs = [x[:CHECK_ROWS + 1].float() if x.is_floating_point() else x[:CHECK_ROWS + 1] for x in xs]
        if raw:
            xs = list(trained.transform.inverse(*xs))
    n = len(xs[0])
    if static_batch is not None:
        if n < static_batch:  # too few samples for one fixed batch: repeat them
            reps = -(-static_batch // n)
            xs = [torch.cat([x] * reps)[:static_batch] for x in xs]
            n = static_batch
        bounds = [(i, i + static_batch) for i in range(0, n - n % static_batch, static_batch)][:MAX_BATCHES]
    else:
        bounds = [(0, 1)] + [(i, min(i + 64, n)) for i in range(1, n, 64)]
    return source, [tuple(x[a:b] for x in xs) for a, b in bounds]


def compare(reference: "nn.Module", exported: Any, batches: list[tuple["torch.Tensor", ...]], fmt: str, source: str,
            tolerance: float) -> ExportCheck:
    """Run both on every batch; the largest absolute difference and the outputs' scale. Each call starts from
    the same seed (in a forked RNG state), so a layer drawing random numbers at inference (rate-encoded
    spikes) draws the same in torch and in a torch runtime (pt2, safetensors)."""
    import torch

    diff = scale = 0.0
    samples = 0
    for xb in batches:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            want = reference(*xb)
            torch.manual_seed(0)
            got = exported(*xb)
        want_t = want if isinstance(want, (tuple, list)) else (want,)
        got_t = got if isinstance(got, (tuple, list)) else (got,)
        if len(want_t) != len(got_t):
            raise ExportError(f"the exported {fmt} model returns {len(got_t)} outputs, the trained model {len(want_t)}")
        for w, g in zip(want_t, got_t):
            g = torch.as_tensor(g)
            if tuple(g.shape) != tuple(w.shape):
                raise ExportError(f"the exported {fmt} model returns shape {tuple(g.shape)} where the trained model "
                                  f"returns {tuple(w.shape)} (batch of {len(xb[0])})",
                                  hint="export with --static-batch if the model fixes its batch size")
            d = (g.double() - w.double()).abs()
            diff = max(diff, float(d.max())) if d.numel() else diff
            scale = max(scale, float(w.double().abs().max())) if w.numel() else scale
        samples += len(xb[0])
    return ExportCheck(RUNTIME[fmt], source, samples, len(batches), diff, scale, tolerance)


def metadata(trained: "TrainedRun", fmt: str, raw: bool, dynamic_batch: bool, batch: int) -> dict[str, Any]:
    """What goes into the exported file beside the graph: enough to use it without layerforge."""
    import torch
    import yaml

    from .._version import __version__

    first: Any = batch if not dynamic_batch and fmt != "safetensors" else "batch"
    ids = trained.graph.integer_inputs()
    inputs = [{"name": n, "shape": [first, *s], "dtype": "int64" if n in ids else "float32"}
              for n, s in trained.graph.inputs.items()]
    outputs = [{"name": n, "shape": [first, *trained.graph.shape_of(n)]} for n in trained.graph.outputs]
    state = trained.transform_state
    transform = {k: (v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in state.items()} if state else None
    h = trained.head
    return {
        "layerforge_version": __version__, "torch_version": torch.__version__.split("+")[0],
        "name": trained.spec.name, "checkpoint": trained.checkpoint, "epoch": trained.epoch,
        "inputs": inputs, "outputs": outputs, "includes_transform": raw,
        "input_note": ("raw inputs: the saved standardisation runs inside the model" if raw else
                       "standardised inputs: apply 'transform' ((x - mean) / std per input) first"),
        "task": trained.task, "head": {"kind": h.kind, "num_classes": h.num_classes, "loss": h.loss},
        "labels": trained.label_names, "transform": transform,
        "spec": yaml.safe_dump(trained.spec.raw, sort_keys=False, allow_unicode=True),
    }
