"""Checkpoints: a directory per checkpoint, written so that a kill at any moment leaves one to resume from,
and verified by checksum before it is used.

Layout of ``checkpoints/<name>/``::

    model.safetensors   the weights (safetensors: no pickle, loadable anywhere)
    state.pt            optimizer, schedule, grad scaler, counters, history and every RNG state
    manifest.json       sha256 and size of both files, the save's generation, the epoch/step they belong to

**The save protocol.** A checkpoint directory is never changed once complete; a save makes a new one:

1. write ``.<name>.tmp-<pid>-<gen>/``: weights, state (each fsynced), then the manifest (fsynced) last,
   then fsync the directory: from here on it is *complete* (its manifest lists files of the right sizes);
2. rename ``<name>`` (if any) to ``.<name>.prev-<pid>-<gen>``, then the new directory to ``<name>``, fsync
   the parent;
3. only then remove the leftovers: every other ``.<name>.*`` directory (older complete ones, incomplete
   ones from an earlier kill).

Nothing complete is deleted before a newer complete one is in place, so after a kill at any step — one
kill or several in a row, during a save or during the cleanup of a leftover — :func:`resolve` finds the
newest complete checkpoint among ``<name>`` and its leftovers (by generation, a counter every save
increases). A failed write (a full disk) raises :class:`CheckpointError` and leaves the earlier
checkpoint as it was. A file whose checksum does not match is reported by name.
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
REQUIRED = (WEIGHTS, STATE)
FORMAT = 1
FULL_DISK_HINT = "free some disk space (or fix the folder's permissions); the previous checkpoint is intact"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- the steps of a save: small functions a test can interrupt one at a time ------------------------
# (tests/engine/test_kill_anywhere.py kills the process at each call in turn, then resumes.)
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


def _rename(src: Path, dst: Path) -> None:
    os.replace(src, dst)


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _write_weights(model: "nn.Module", dest: Path) -> None:
    from safetensors.torch import save_model

    save_model(model, str(dest), metadata={"format": "pt"})


def _write_state(state: dict[str, Any], dest: Path) -> None:
    import torch

    torch.save(state, dest)


def _write_bytes(dest: Path, data: bytes) -> None:
    with open(dest, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a small file atomically (temporary file, fsync, rename): a reader sees the old or the new."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        _write_bytes(tmp, data)
        _rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


# --- finding checkpoints ----------------------------------------------------------------------------
def _leftovers(path: Path) -> list[Path]:
    """The directories a save of ``path`` may leave beside it: ``.<name>.tmp-*``, ``.<name>.prev-*`` and
    the ``.<name>.old`` of earlier versions."""
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.glob(f".{path.name}.*") if p.is_dir() and not p.is_symlink())


def _complete(path: Path) -> dict[str, Any] | None:
    """The manifest of a complete checkpoint directory (manifest readable, every required file present
    with the size it lists), else None. Cheap: no checksums (see :func:`verify`)."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
        if not all(isinstance(files.get(n), dict) for n in REQUIRED):
            return None
        if any((path / n).stat().st_size != files[n].get("bytes") for n in files):
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return manifest


def _candidates(path: Path) -> list[tuple[int, bool, Path]]:
    """(generation, is the canonical name, directory) of every complete checkpoint for ``path``."""
    out = []
    for d in [path, *_leftovers(path)]:
        m = _complete(d) if d.is_dir() else None
        if m is not None:
            gen = m.get("generation")
            out.append((gen if isinstance(gen, int) else 0, d == path, d))
    return out


def exists(path: Path) -> bool:
    """True when there is a checkpoint ``path`` (or a leftover of a save of it), complete or not."""
    path = Path(path)
    return path.is_dir() or bool(_leftovers(path))


def resolve(path: Path) -> Path:
    """The checkpoint directory to read for ``path``: the newest complete one among ``path`` and the
    leftovers of an interrupted save (see the module's protocol). With none complete, the error says what
    is wrong with ``path``."""
    path = Path(path)
    found = _candidates(path)
    if not found:
        if path.is_dir():
            _verify_dir(path)  # raises, naming the missing or damaged file
        raise CheckpointError(f"no checkpoint at {path}", hint="train first, or give a run directory that has checkpoints/")
    return max(found, key=lambda c: (c[0], c[1]))[2]


# --- writing ----------------------------------------------------------------------------------------
def save_checkpoint(path: Path, model: "nn.Module", state: dict[str, Any], meta: dict[str, Any] | None = None) -> None:
    """Write ``model``'s weights and ``state`` as the checkpoint ``path`` by the protocol above."""
    from safetensors import SafetensorError

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CheckpointError(f"cannot create {path.parent}: {e.strerror or e}", hint=FULL_DISK_HINT) from None
    generation = 1 + max((c[0] for c in _candidates(path)), default=0)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{generation}"
    _remove(tmp)  # a leftover with this name is incomplete (a complete one would have raised the generation)
    try:
        tmp.mkdir()
        _write_weights(model, tmp / WEIGHTS)
        _write_state(state, tmp / STATE)
        files = {}
        for name in REQUIRED:
            _fsync_file(tmp / name)
            files[name] = {"sha256": _sha256(tmp / name), "bytes": (tmp / name).stat().st_size}
        manifest = {"format": FORMAT, "generation": generation, "files": files, **(meta or {})}
        _write_bytes(tmp / MANIFEST, json.dumps(manifest, indent=2).encode("utf-8"))
        _fsync_dir(tmp)
    except (OSError, RuntimeError, SafetensorError) as e:  # ENOSPC, EDQUOT, EROFS (torch.save and safetensors
        _remove(tmp)                                        # wrap them in their own error types)
        raise CheckpointError(f"could not write the checkpoint {path}: {_reason(e)}", hint=FULL_DISK_HINT) from None
    try:
        if path.exists():
            _rename(path, path.parent / f".{path.name}.prev-{os.getpid()}-{generation}")
        _rename(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:
        raise CheckpointError(f"could not put the checkpoint {path} in place: {_reason(e)}",
                              hint="the new checkpoint stays beside it and is found on --resume") from None
    for old in _leftovers(path):
        _remove(old)
    _fsync_dir(path.parent)


def _reason(e: BaseException) -> str:
    return (e.strerror if isinstance(e, OSError) and e.strerror else str(e))[:200]


# --- reading ----------------------------------------------------------------------------------------
def verify(path: Path) -> dict[str, Any]:
    """Check a checkpoint's files against its manifest (which must list the weights and the state);
    returns the manifest. Names the bad file."""
    return _verify_dir(resolve(path))


def _verify_dir(path: Path) -> dict[str, Any]:
    mpath = path / MANIFEST
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        files = manifest["files"]
        missing = [n for n in REQUIRED if not isinstance(files.get(n), dict)]
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} is incomplete: {MANIFEST} is missing",
                              hint="use another checkpoint (checkpoints/best or checkpoints/last) or retrain") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"checkpoint {path} is corrupted: {mpath} cannot be read ({e})") from None
    if missing:
        raise CheckpointError(f"checkpoint {path} is not verifiable: {mpath} does not list {', '.join(missing)}",
                              hint="the manifest was damaged or edited; use the other checkpoint (best/last) or retrain")
    for name, info in files.items():
        f = path / str(name)
        try:
            good = isinstance(info, dict) and f.stat().st_size == info.get("bytes") and _sha256(f) == info.get("sha256")
        except FileNotFoundError:
            raise CheckpointError(f"checkpoint {path} is incomplete: {f} is missing") from None
        if not good:
            raise CheckpointError(f"checkpoint file {f} is corrupted: its contents do not match the checksum in {mpath}",
                                  hint="the file was changed or damaged after it was written; use the other checkpoint "
                                       "(best/last) or retrain")
    return manifest


def load_weights(path: Path, model: "nn.Module") -> dict[str, Any]:
    """Verify the checkpoint and load its weights into ``model``; returns the manifest."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    path = resolve(path)
    manifest = verify(path)
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
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"checkpoint file {path / STATE} cannot be read: {e}") from None
