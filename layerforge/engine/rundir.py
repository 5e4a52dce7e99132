"""The run directory: everything a run leaves behind, enough to evaluate, predict and resume from.

::

    runs/<name>/<timestamp>/
      spec.yaml             the resolved spec (after --set overrides), every plugin file pinned by path and
                            sha256; evaluate, predict, profile and resume read it
      data.json             what the data was: task, classes, features, vocabulary, the model's head, the
                            config's folder (relative data paths)
      transform.json        the fitted data transform (+ transform.safetensors for its tensors)
      manifest.json         sha256 and size of the four files above (checkpoints carry their own)
      run.json              name, creation time, status (display only: nothing a result depends on)
      environment.json      versions, device, threads
      metrics.jsonl         one JSON line per epoch, then a final line ({"final": true, ...})
      metrics.csv           the epoch lines as a table (train.log: [csv])
      tensorboard/          TensorBoard event files (train.log: [tensorboard]); tensorboard/hparams/ the run's
                            hyperparameters with its final metrics
      export/               files written by 'layerforge export' (model.onnx, model.pt2, model.safetensors)
      init_from.json        what model.init_from loaded, skipped, found mismatched (engine/init_from.py)
      checkpoints/last/     weights + optimizer/schedule/scaler/RNG state (exact resume)
      checkpoints/best/     the best epoch's weights (by early_stopping.monitor)
      plots/*.png           loss and metric curves
      .lock                 held (flock) by the process training in the directory; names its PID

Everything a prediction depends on is checksummed: the weights and state by their checkpoint's manifest,
the rest by ``manifest.json``, which must list every one of them; :meth:`RunDir.open` verifies it before
anything is read, so an edited spec.yaml (a ``plugins:`` entry added), transform.json or data.json is an
error, not a silently different prediction. A run is written by one process at a time (:meth:`RunDir.locked`).
"""
from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import hashlib
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Iterable

import yaml

from ..errors import CheckpointError
from .checkpoint import atomic_write_bytes, atomic_write_text

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
DATA = "data.json"
MANIFEST = "manifest.json"
LOCK = ".lock"
COVERED = (SPEC, DATA, TRANSFORM_JSON, TRANSFORM_TENSORS)  # what manifest.json checksums
REQUIRED = (SPEC, DATA, TRANSFORM_JSON)  # (+ transform.safetensors when transform.json names tensors)
# An epoch record's wall-clock fields: they differ between two runs of one spec, a resumed run included; every
# other field is computed by the training and is reproduced exactly (what "exact resume" promises).
TIMINGS = frozenset({"time_s", "val_time_s", "compile_s", "samples_per_s"})
NOT_METRICS = TIMINGS | {"epoch", "step", "lr"}  # an epoch record's keys that are not metrics


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
    def open(cls, path: str | Path, verify: bool = True) -> "RunDir":
        """A run directory to read, its files verified against manifest.json first (see :meth:`verify`;
        ``verify=False`` for a caller that takes the lock first and verifies then)."""
        p = Path(path)
        if not p.is_dir():
            raise CheckpointError(f"no run directory at {p}", hint="give a folder made by 'layerforge train' (see 'layerforge runs')")
        if not (p / SPEC).is_file():
            raise CheckpointError(f"{p} is not a run directory: {SPEC} is missing",
                                  hint="give a folder made by 'layerforge train', e.g. runs/<name>/<timestamp>")
        run = cls(p)
        if verify:
            run.verify()
        return run

    # --- integrity ----------------------------------------------------------------------------
    def _manifest(self) -> dict[str, Any]:
        p = self.path / MANIFEST
        try:
            manifest = json.loads(p.read_text(encoding="utf-8"))
            files = manifest["files"]
        except FileNotFoundError:
            raise CheckpointError(f"{self.path} has no {MANIFEST}, so its files cannot be verified",
                                  hint="a run made by an older layerforge, or the file was deleted: retrain it") from None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{p} cannot be read ({e})", hint="the file was damaged or edited; retrain the run") from None
        if not isinstance(files, dict):
            raise CheckpointError(f"{p} is damaged: 'files' is not a mapping", hint="retrain the run")
        return manifest

    def verify(self) -> None:
        """Every file a result depends on (spec, data description, transform) matches manifest.json, which
        must list each of them; a file listed with a ``previous`` checksum (a rewrite the writer did not
        finish) may match either. Names the file that does not."""
        files = self._manifest()["files"]
        unknown = sorted(set(files) - set(COVERED))
        if unknown:
            raise CheckpointError(f"{self.path / MANIFEST} lists files a run does not have: {', '.join(unknown)}",
                                  hint="the manifest was edited; retrain the run")
        required = list(REQUIRED)
        for name in COVERED:
            if name not in files:
                continue
            entry = files[name]
            data = self._read(name)
            digest = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            allowed = [entry, entry.get("previous")] if isinstance(entry, dict) else []
            if not any(isinstance(a, dict) and a.get("sha256") == digest["sha256"] and a.get("bytes") == digest["bytes"]
                       for a in allowed):
                raise CheckpointError(f"{self.path / name} was changed after the run wrote it (its sha256 no longer "
                                      f"matches {MANIFEST})",
                                      hint="restore the file, or retrain; layerforge does not use a run whose spec, "
                                           "data description or transform was edited")
            if name == TRANSFORM_JSON and _names_tensors(data):
                required.append(TRANSFORM_TENSORS)
        missing = [n for n in required if n not in files]
        if missing:
            raise CheckpointError(f"{self.path / MANIFEST} does not list {', '.join(missing)}, so the run cannot be "
                                  "verified", hint="the manifest was damaged or edited; retrain the run")

    def _read(self, name: str) -> bytes:
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            raise CheckpointError(f"{self.path / name} is missing (listed in {MANIFEST})", hint="retrain the run") from None
        except OSError as e:
            raise CheckpointError(f"cannot read {self.path / name}: {e.strerror or e}") from None

    def _write_covered(self, name: str, data: bytes) -> None:
        """Write a checksummed file: manifest first names the new checksum beside the old one, then the
        file, then the manifest names only the new one; a kill anywhere leaves a verifiable run."""
        p = self.path / MANIFEST
        manifest = json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {"format": 1, "files": {}}
        files = manifest["files"]
        new = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        old = files.get(name)
        if isinstance(old, dict) and (old.get("sha256"), old.get("bytes")) != (new["sha256"], new["bytes"]):
            files[name] = {**new, "previous": {"sha256": old.get("sha256"), "bytes": old.get("bytes")}}
            atomic_write_text(p, json.dumps(manifest, indent=2) + "\n")
        atomic_write_bytes(self.path / name, data)
        files[name] = new
        atomic_write_text(p, json.dumps(manifest, indent=2) + "\n")

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run directory for writing (an ``flock`` on ``.lock``, released when the process ends, even
        by SIGKILL): a second training of the same directory is refused, naming the holder's PID. Needs
        write access: a read-only run directory is refused here, before any work."""
        import fcntl

        p = self.path / LOCK
        try:
            fd = os.open(p, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as e:
            raise CheckpointError(f"cannot write in {self.path} ({e.strerror or e}): training and --resume need write "
                                  "access to the run directory",
                                  hint="evaluate and predict work read-only; to resume, copy the run to a writable "
                                       "folder (cp -r) and resume the copy") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise CheckpointError(f"{self.path} is in use by another layerforge process (PID {holder or 'unknown'})",
                                  hint="wait for it to finish, or stop it: one run directory is written by one "
                                       "training at a time") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

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
        self._write_covered(SPEC, yaml.safe_dump(raw, sort_keys=False, allow_unicode=True).encode("utf-8"))

    def load_spec(self, overrides: list[str] | None = None, plugins: list[str] | None = None,
                  train_rules: bool = True, trust_plugins: bool = False) -> tuple["Spec", "Graph"]:
        """The run's spec through the front door; relative data paths start at the original config's folder.
        (``train_rules=False`` for evaluate/predict: the train section was checked when the run trained.)
        Only the plugin files the run was trained with are imported, each only if its content still has the
        recorded sha256; ``trust_plugins`` imports changed or unpinned ones anyway (with a warning)."""
        from ..build import load

        base = self.read_json(DATA).get("base_dir")
        return load(self.path / SPEC, overrides, plugins, base_dir=base or self.path, train_rules=train_rules,
                    trust_plugins=trust_plugins, pinned_plugins=True)

    # --- files ------------------------------------------------------------------------------

    def write_json(self, name: str, data: Any) -> None:
        text = json.dumps(_clean(data), indent=2, default=str) + "\n"
        if name in COVERED:
            self._write_covered(name, text.encode("utf-8"))
        else:
            atomic_write_text(self.path / name, text)

    def read_json(self, name: str) -> dict[str, Any]:
        p = self.path / name
        if not p.is_file():
            return {}
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (ValueError, OSError) as e:  # JSONDecodeError, UnicodeDecodeError, a file that cannot be read
            raise CheckpointError(f"{p} is corrupted: {e}") from None
        if not isinstance(data, dict):
            raise CheckpointError(f"{p} is corrupted: not a JSON object")
        return data

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
        from safetensors.torch import save

        tensors = {k: v.detach().cpu().contiguous() for k, v in state.items() if isinstance(v, torch.Tensor)}
        plain = {k: (v.tolist() if hasattr(v, "tolist") and not isinstance(v, (int, float, str)) else v)
                 for k, v in state.items() if k not in tensors}
        plain["_tensors"] = sorted(tensors)
        if tensors:
            self._write_covered(TRANSFORM_TENSORS, save(tensors))
        self.write_json(TRANSFORM_JSON, plain)

    def load_transform(self) -> dict[str, Any] | None:
        plain = self.read_json(TRANSFORM_JSON)
        if not plain:
            return None
        names = plain.pop("_tensors", [])
        if names:
            from safetensors import SafetensorError
            from safetensors.torch import load

            try:
                plain.update(load(self._read(TRANSFORM_TENSORS)))
            except SafetensorError as e:
                raise CheckpointError(f"{self.path / TRANSFORM_TENSORS} cannot be read ({e})") from None
        return plain


def _names_tensors(transform_json: bytes) -> bool:
    try:
        return bool(json.loads(transform_json).get("_tensors"))
    except (ValueError, AttributeError):
        return False


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
