"""The run directory: everything a run leaves behind, enough to evaluate, predict and resume from.

::

    runs/<name>/<timestamp>/
      spec.yaml             the resolved spec (after --set overrides), every plugin file pinned by path and
                            sha256; evaluate, predict, profile and resume read it
      run.json              name, creation time, the config's folder (relative data paths), status
      environment.json      versions, device, threads
      metrics.jsonl         one JSON line per epoch, then a final line ({"final": true, ...})
      metrics.csv           the epoch lines as a table (train.log: [csv])
      tensorboard/          TensorBoard event files (train.log: [tensorboard]); tensorboard/hparams/ the run's
                            hyperparameters with its final metrics
      export/               files written by 'layerforge export' (model.onnx, model.pt2, model.safetensors)
      transform.json        the fitted data transform (+ transform.safetensors for its tensors)
      checkpoints/last/     weights + optimizer/schedule/scaler/RNG state (exact resume)
      checkpoints/best/     the best epoch's weights (by early_stopping.monitor)
      plots/*.png           loss and metric curves
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import yaml

from ..errors import CheckpointError
from .checkpoint import atomic_write_text

if TYPE_CHECKING:
    from ..graph import Graph
    from ..spec.schema import Spec

SPEC = "spec.yaml"
RUN = "run.json"
ENV = "environment.json"
METRICS = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
TRANSFORM_JSON = "transform.json"
TRANSFORM_TENSORS = "transform.safetensors"


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become strings, tuples lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def timestamp() -> str:
    return _dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


class RunDir:
    """A run directory on disk (created by :meth:`create`, reopened by :meth:`open`)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # --- locations --------------------------------------------------------------------------
    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def tensorboard(self) -> Path:
        """TensorBoard's event files (written by engine.logs through tensorboardX)."""
        return self.path / "tensorboard"

    @property
    def exports(self) -> Path:
        """Where ``layerforge export`` writes by default."""
        return self.path / "export"

    # --- creation ---------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, name: str, exact: str | Path | None = None) -> "RunDir":
        """``exact`` is the run directory itself (``--out``); else ``<root>/<name>/<timestamp>[-n]``."""
        if exact is not None:
            path = Path(exact)
            cls.check_new(path)
        else:
            base = Path(root) / name / timestamp()
            path, n = base, 1
            while path.exists():
                n += 1
                path = base.with_name(f"{base.name}-{n}")
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    @staticmethod
    def check_new(path: str | Path) -> None:
        """Refuse to start a run in a folder that holds one (or anything else)."""
        path = Path(path)
        if (path / RUN).exists():
            raise CheckpointError(f"{path} already holds a run", hint=f"resume it with --resume {path}, or choose another --out")
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise CheckpointError(f"--out {path} is not empty", hint="choose a new or empty directory")

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        p = Path(path)
        if not p.is_dir():
            raise CheckpointError(f"no run directory at {p}", hint="give a folder made by 'layerforge train' (see 'layerforge runs')")
        if not (p / SPEC).is_file():
            raise CheckpointError(f"{p} is not a run directory: {SPEC} is missing",
                                  hint="give a folder made by 'layerforge train', e.g. runs/<name>/<timestamp>")
        return cls(p)

    # --- the spec ---------------------------------------------------------------------------
    def write_spec(self, spec: "Spec") -> None:
        """Save the spec as validated (after ``--set``), each plugin file loaded for it (``--plugins`` and
        ``plugins:``) pinned by absolute path and sha256, so the run reopens alone and a changed plugin is
        noticed."""
        raw = copy.deepcopy(spec.raw) if isinstance(spec.raw, dict) else spec.model_dump(mode="json", exclude_none=True)
        raw.pop("plugins", None)
        if spec.plugin_files:
            raw = {**{k: v for k, v in raw.items() if k in ("name", "seed")},
                   "plugins": [f.to_entry() for f in spec.plugin_files],
                   **{k: v for k, v in raw.items() if k not in ("name", "seed")}}
        atomic_write_text(self.path / SPEC, yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))

    def load_spec(self, overrides: list[str] | None = None, plugins: list[str] | None = None,
                  train_rules: bool = True) -> tuple["Spec", "Graph"]:
        """The run's spec through the front door; relative data paths start at the original config's folder.
        (``train_rules=False`` for evaluate/predict: the train section was checked when the run trained.)"""
        from ..build import load

        base = self.read_json(RUN).get("base_dir")
        return load(self.path / SPEC, overrides, plugins, base_dir=base or self.path, train_rules=train_rules)

    # --- files ------------------------------------------------------------------------------

    def write_json(self, name: str, data: Any) -> None:
        atomic_write_text(self.path / name, json.dumps(_clean(data), indent=2, default=str) + "\n")

    def read_json(self, name: str) -> dict[str, Any]:
        p = self.path / name
        if not p.is_file():
            return {}
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{p} is corrupted: {e}") from None

    def update_run(self, **fields: Any) -> None:
        info = self.read_json(RUN)
        info.update(fields)
        self.write_json(RUN, info)

    def append_metrics(self, record: dict[str, Any]) -> None:
        with open(self.path / METRICS, "a", encoding="utf-8") as f:
            f.write(json.dumps(_clean(record)) + "\n")
            f.flush()

    def rewrite_metrics(self, records: Iterable[dict[str, Any]]) -> None:
        """Replace metrics.jsonl (on resume: drop lines past the checkpoint being resumed)."""
        atomic_write_text(self.path / METRICS, "".join(json.dumps(_clean(r)) + "\n" for r in records))

    def write_metrics_csv(self, records: list[dict[str, Any]]) -> Path:
        """metrics.csv: the epoch records as rows, columns in order of first appearance (rewritten whole, so it
        always equals metrics.jsonl's epoch lines, after a resume too)."""
        import csv
        import io

        columns = list(dict.fromkeys(k for r in records for k in r))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(_clean(r) for r in records)
        atomic_write_text(self.path / METRICS_CSV, buf.getvalue())
        return self.path / METRICS_CSV

    def read_metrics(self) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """(epoch records, final record or None); unreadable lines (a killed write) are skipped."""
        p = self.path / METRICS
        epochs: list[dict[str, Any]] = []
        final = None
        if not p.is_file():
            return epochs, final
        for line in p.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("final"):
                final = rec
            else:
                epochs.append(rec)
        return epochs, final

    def save_transform(self, state: dict[str, Any]) -> None:
        """Tensors go to transform.safetensors, everything else to transform.json."""
        import torch
        from safetensors.torch import save_file

        tensors = {k: v.detach().cpu().contiguous() for k, v in state.items() if isinstance(v, torch.Tensor)}
        plain = {k: (v.tolist() if hasattr(v, "tolist") and not isinstance(v, (int, float, str)) else v)
                 for k, v in state.items() if k not in tensors}
        plain["_tensors"] = sorted(tensors)
        if tensors:
            tmp = self.path / f".{TRANSFORM_TENSORS}.tmp-{os.getpid()}"
            save_file(tensors, str(tmp))
            os.replace(tmp, self.path / TRANSFORM_TENSORS)
        self.write_json(TRANSFORM_JSON, plain)

    def load_transform(self) -> dict[str, Any] | None:
        plain = self.read_json(TRANSFORM_JSON)
        if not plain:
            return None
        names = plain.pop("_tensors", [])
        if names:
            from safetensors.torch import load_file

            p = self.path / TRANSFORM_TENSORS
            if not p.is_file():
                raise CheckpointError(f"{p} is missing (transform.json refers to it)")
            plain.update(load_file(str(p)))
        return plain


def find_runs(root: str | Path) -> list[RunDir]:
    """Every run directory under ``root`` (or ``root`` itself), newest first."""
    root = Path(root)
    if (root / SPEC).is_file() and (root / RUN).is_file():
        return [RunDir(root)]
    found = [RunDir(p.parent) for p in root.rglob(RUN) if (p.parent / SPEC).is_file()]
    return sorted(found, key=lambda r: r.read_json(RUN).get("created", ""), reverse=True)


def run_summary(run: RunDir) -> dict[str, Any]:
    """One row of ``layerforge runs``: name, status, epochs, best epoch and its metrics, evaluations."""
    info = run.read_json(RUN)
    epochs, final = run.read_metrics()
    best_epoch = (final or {}).get("best_epoch", info.get("best_epoch"))
    best = next((r for r in epochs if r.get("epoch") == best_epoch), None) if best_epoch else None
    evals = {}
    for p in sorted(run.path.glob("eval_*.json")):
        try:
            evals[p.stem[5:]] = json.loads(p.read_text(encoding="utf-8")).get("metrics", {})
        except (json.JSONDecodeError, OSError):
            continue
    return {
        "path": str(run.path), "name": info.get("name", run.path.parent.name), "created": info.get("created"),
        "status": info.get("status", "unknown"), "epochs": len(epochs), "best_epoch": best_epoch,
        "monitor": (final or {}).get("monitor", info.get("monitor")), "best": best,
        "time_s": (final or {}).get("time_s"), "evaluations": evals,
    }
