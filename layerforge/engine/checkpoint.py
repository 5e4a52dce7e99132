"""Checkpoints: a directory per checkpoint, written atomically and verified by checksum.

Layout of ``checkpoints/<name>/``::

    model.safetensors   the weights (safetensors: no pickle, loadable anywhere)
    state.pt            optimizer, schedule, grad scaler, counters, history and every RNG state
    manifest.json       sha256 and size of both files, plus the epoch/step they belong to

A checkpoint is written into a temporary directory (each file fsynced), which then replaces the old
one by rename; a crash at any moment leaves either the old or the new checkpoint, never half of one.
A file whose checksum does not match is reported by name as a :class:`CheckpointError`.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointError

if TYPE_CHECKING:
    from torch import nn

WEIGHTS = "model.safetensors"
STATE = "state.pt"
MANIFEST = "manifest.json"
FORMAT = 1


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a small text file atomically (temporary file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def save_checkpoint(path: Path, model: "nn.Module", state: dict[str, Any], meta: dict[str, Any] | None = None) -> None:
    """Write ``model``'s weights and ``state`` to the checkpoint directory ``path``, atomically."""
    import torch
    from safetensors.torch import save_model

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    tmp.mkdir()
    save_model(model, str(tmp / WEIGHTS), metadata={"format": "pt"})
    torch.save(state, tmp / STATE)
    files = {}
    for name in (WEIGHTS, STATE):
        _fsync_file(tmp / name)
        files[name] = {"sha256": _sha256(tmp / name), "bytes": (tmp / name).stat().st_size}
    manifest = {"format": FORMAT, "files": files, **(meta or {})}
    with open(tmp / MANIFEST, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(tmp)
    # Swap: last → .last.old, tmp → last, drop .last.old. A crash in between leaves .last.old, which
    # resolve() falls back to.
    old = path.parent / f".{path.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    if old.exists():
        shutil.rmtree(old)


def resolve(path: Path) -> Path:
    """The checkpoint directory to read: ``path``, or the previous one if a crash interrupted a swap."""
    path = Path(path)
    if path.is_dir():
        return path
    old = path.parent / f".{path.name}.old"
    if old.is_dir():
        return old
    raise CheckpointError(f"no checkpoint at {path}", hint="train first, or give a run directory that has checkpoints/")


def verify(path: Path) -> dict[str, Any]:
    """Check a checkpoint's files against its manifest; returns the manifest. Names the bad file."""
    path = resolve(path)
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise CheckpointError(f"checkpoint {path} is incomplete: {MANIFEST} is missing",
                              hint="use another checkpoint (checkpoints/best or checkpoints/last) or retrain")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        files = manifest["files"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint {path} is corrupted: {mpath} cannot be read ({e})") from None
    for name, info in files.items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"checkpoint {path} is incomplete: {f} is missing")
        if f.stat().st_size != info.get("bytes") or _sha256(f) != info.get("sha256"):
            raise CheckpointError(f"checkpoint file {f} is corrupted: its contents do not match the checksum in {mpath}",
                                  hint="the file was changed or damaged after it was written; use the other checkpoint "
                                       "(best/last) or retrain")
    return manifest


def load_weights(path: Path, model: "nn.Module") -> dict[str, Any]:
    """Verify the checkpoint and load its weights into ``model``; returns the manifest."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    manifest = verify(path)
    path = resolve(path)
    try:
        missing, unexpected = load_model(model, str(path / WEIGHTS), strict=False)
    except (SafetensorError, RuntimeError) as e:
        raise CheckpointError(f"the weights in {path / WEIGHTS} do not fit the model: {e}",
                              hint="the run's spec.yaml and its checkpoint disagree; was spec.yaml edited?") from None
    if missing or unexpected:
        parts = ([f"missing {', '.join(sorted(missing)[:5])}"] if missing else []) + \
                ([f"unexpected {', '.join(sorted(unexpected)[:5])}"] if unexpected else [])
        raise CheckpointError(f"the weights in {path / WEIGHTS} do not fit the model ({'; '.join(parts)})",
                              hint="the run's spec.yaml and its checkpoint disagree; was spec.yaml edited?")
    return manifest


def load_state(path: Path) -> dict[str, Any]:
    """The training state beside the weights (call after :func:`verify`)."""
    import pickle

    import torch

    path = resolve(path)
    try:
        return torch.load(path / STATE, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        raise CheckpointError(f"checkpoint file {path / STATE} cannot be read: {e}") from None
