"""The study directory: everything a search leaves beside its trials, read and written in one place.

::

    <train.out>/<name>/search-<study>/
      study.json        the study's name, storage, objectives, the config and --set it started from
      spec.yaml         the search spec as given (after --set), for reference
      journal.log       Optuna's journal (the default storage; --storage URL puts the study in a database)
      trial-<k>/        one ordinary run directory per trained trial (engine.rundir writes it)
      best.yaml         the best trial's spec, without search: (layerforge train best.yaml retrains it)
      report.json       every trial, the leaderboard, the Pareto front, parameter importances
      plots/            history.png, pareto.png, importances.png
      workers/          one lock file per live worker (held while it runs), worker-<i>.log for --workers

Locks are ``flock`` locks, released by the operating system when their process dies: that is how a
worker tells that a trial left RUNNING belongs to a worker that was killed.
"""
from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Any, Iterator

from ..engine.checkpoint import atomic_write_text
from ..engine.rundir import RunDir

INFO = "study.json"
SPEC = "spec.yaml"
JOURNAL = "journal.log"
BEST = "best.yaml"
REPORT = "report.json"


class StudyDir:
    """A study directory on disk."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def of(cls, root: str | Path, name: str, study: str) -> "StudyDir":
        return cls(Path(root) / name / f"search-{study}")

    # --- locations ----------------------------------------------------------------------------
    @property
    def journal(self) -> Path:
        return self.path / JOURNAL

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def workers(self) -> Path:
        return self.path / "workers"

    def trial(self, number: int) -> Path:
        return self.path / f"trial-{number}"

    # --- files (atomic writes, as a run directory's) -----------------------------------------
    def write_text(self, name: str, text: str) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / name, text)
        return self.path / name

    def write_json(self, name: str, data: Any) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        RunDir(self.path).write_json(name, data)
        return self.path / name

    def read_json(self, name: str = INFO) -> dict[str, Any]:
        return RunDir(self.path).read_json(name)

    # --- locks --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the study's lock: the workers of this machine take turns to pick their next trial."""
        self.path.mkdir(parents=True, exist_ok=True)
        with _flock(self.path / ".lock"):
            yield

    @contextlib.contextmanager
    def worker(self) -> Iterator[str]:
        """Register a live worker for as long as the block runs; yields its lock file's name."""
        self.workers.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}.lock"
        path = self.workers / name
        try:
            with _flock(path):
                yield name
        finally:
            with contextlib.suppress(OSError):
                path.unlink()

    def worker_alive(self, name: str) -> bool:
        """Whether the worker registered as ``workers/<name>`` still runs (holds its lock). A worker removes
        its file when it ends; a killed one leaves it behind, unlocked."""
        try:
            with _flock(self.workers / name, wait=False, create=False):
                return False
        except BlockingIOError:
            return True
        except FileNotFoundError:
            return False


@contextlib.contextmanager
def _flock(path: Path, wait: bool = True, create: bool = True) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created if missing, unless not ``create``: FileNotFoundError).
    ``wait=False`` raises BlockingIOError when another process holds it."""
    import fcntl

    fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class JournalLock:
    """The lock Optuna's journal file takes around each read and append, as a ``flock``: unlike Optuna's own
    (a lock file that a killed process leaves behind for a 30 s grace period) it dies with its process."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._held = contextlib.ExitStack()

    def acquire(self) -> bool:
        self._held.enter_context(_flock(self.path))
        return True

    def release(self) -> None:
        self._held.close()
