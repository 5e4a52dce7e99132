"""The study on Optuna: storage, sampler and pruner, and the worker loop that runs trials.

Storage: a journal file in the study directory by default (several processes of one machine share it);
``--storage URL`` puts the study in a database (sqlite, postgresql, mysql) for several machines, with
Optuna's heartbeats so that a worker on another machine that dies is noticed too.

The loop (one per worker process): under the study directory's lock, fail and re-queue the trials of
dead workers, stop when the study has its trials (finished, pruned included, and running), when the
deadline passed or when the parent process is gone; else ask for a trial and claim it. Then run it
(:class:`~layerforge.search.objective.TrialRunner`) and tell the outcome. A trial stopped by Ctrl-C is failed
and re-queued, so ``--resume`` runs it first; one left RUNNING by a worker that was killed is failed and
re-queued once (a second death means the trial itself is the problem).
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..errors import LayerforgeError, UsageError
from .studydir import JournalLock, StudyDir

if TYPE_CHECKING:
    import optuna

    from .objective import Goal, Outcome, TrialRunner
    from .schema import SearchSpec

HEARTBEAT_S = 15  # database storages: a running trial's worker writes a heartbeat this often ...
GRACE_S = 60  # ... and a trial without one for this long is taken as dead


class SearchError(LayerforgeError):
    """A search could not run (its workers failed, the storage refused)."""

    title = "search failed"


def require_optuna() -> Any:
    """Optuna, or a clear error naming the extra that installs it."""
    try:
        import optuna
    except ImportError:
        raise UsageError("layerforge search needs Optuna, which is not installed",
                         hint='pip install -e ".[search]"   (or: pip install "optuna>=4")') from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the library never prints; the CLI draws the trials
    return optuna


# ---------------------------------------------------------------------------------------------
# Storage, sampler, pruner
# ---------------------------------------------------------------------------------------------
def open_storage(study_dir: StudyDir, url: str | None) -> tuple[Any, str]:
    """(the Optuna storage, how to show it). ``url=None``: the study directory's journal file."""
    optuna = require_optuna()
    if url is None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        study_dir.path.mkdir(parents=True, exist_ok=True)
        path = study_dir.journal
        backend = JournalFileBackend(str(path), lock_obj=JournalLock(path.with_name(path.name + ".lock")))
        return JournalStorage(backend), f"journal {path}"
    import sqlalchemy.exc

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(_driver(url), heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                                                 heartbeat_stale_trial_callback=lambda s, t: requeue(s, t, once=True))
    except ImportError as e:
        raise UsageError(f"--storage {_hide_password(url)}: its database driver is not installed ({e.name or e})",
                         hint='pip install -e ".[search]" installs the PostgreSQL driver (psycopg); '
                              'MySQL needs pymysql') from None
    except sqlalchemy.exc.OperationalError as e:
        raise UsageError(f"--storage {_hide_password(url)}: {str(e).splitlines()[0]}",
                         hint="is the database server running and reachable? check the host, port, user, password "
                              "and database name") from None
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as e:
        raise UsageError(f"--storage {_hide_password(url)}: {str(e).splitlines()[0]}",
                         hint="give an SQLAlchemy URL: sqlite:///study.db, postgresql://user:pw@host/db, "
                              "mysql+pymysql://user:pw@host/db") from None
    return storage, _hide_password(url)


def _driver(url: str) -> str:
    """``postgresql://`` with the driver the search extra installs (psycopg 3) when psycopg2, SQLAlchemy's
    default before 2.1, is not there."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg2") is None \
            and importlib.util.find_spec("psycopg") is not None:
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _hide_password(url: str) -> str:
    head, sep, tail = url.partition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, cred = head.partition("://")
    user = cred.split(":", 1)[0]
    return f"{scheme}://{user}{':***' if ':' in cred else ''}@{tail}"


def sampler_name(search: "SearchSpec", n_goals: int) -> str:
    name = search.sampler.name
    return ("tpe" if n_goals == 1 else "nsga2") if name == "auto" else name


def pruner_name(search: "SearchSpec", goals: list["Goal"]) -> str:
    if search.pruner is not None:
        return search.pruner.name
    return "median" if len(goals) == 1 and goals[0].per_epoch else "none"


def make_sampler(search: "SearchSpec", n_goals: int, seed: int, trials: int) -> Any:
    optuna = require_optuna()
    name = sampler_name(search, n_goals)
    s = search.sampler
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "nsga2":
            population = s.population or min(50, max(4, trials // 4))
            return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
        # multivariate + group: TPE models parameters jointly and keeps conditional ones (when:) apart
        return optuna.samplers.TPESampler(n_startup_trials=s.startup_trials, seed=seed, multivariate=True,
                                          group=True, constant_liar=True)


def make_pruner(search: "SearchSpec", goals: list["Goal"], epochs: int) -> Any:
    optuna = require_optuna()
    name = pruner_name(search, goals)
    p = search.pruner
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.startup_trials if p else 5,
                                           n_warmup_steps=p.warmup_epochs if p else 0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=p.min_epochs if p else 1, max_resource=max(epochs, 1),
                                              reduction_factor=p.reduction_factor if p else 3)
    return optuna.pruners.NopPruner()


def study_exists(storage: Any, name: str) -> bool:
    optuna = require_optuna()
    return name in {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}


# ---------------------------------------------------------------------------------------------
# The worker loop
# ---------------------------------------------------------------------------------------------
@dataclass
class Limits:
    """When a worker stops starting trials."""

    trials: int  # the study's target: finished (complete or pruned) + running
    deadline: float | None = None  # time.time() after which no trial starts
    parent: int | None = None  # stop when this process is gone (a --workers child whose parent died)


def work(study: "optuna.Study", study_dir: StudyDir, trial_runner: "TrialRunner", limits: Limits, journal: bool,
         notify: Callable[[], None] = lambda: None) -> str:
    """Run trials until the study has its trials ('completed'), the deadline passed ('timeout'), Ctrl-C
    ('interrupted') or the parent is gone ('orphaned')."""
    with study_dir.worker() as lock_name:
        while True:
            with study_dir.locked():
                recover(study, study_dir, journal)
                if _counted(study) >= limits.trials:
                    return "completed"
                if limits.deadline is not None and time.time() >= limits.deadline:
                    return "timeout"
                if limits.parent is not None and os.getppid() != limits.parent:
                    return "orphaned"
                trial = study.ask()
                trial.set_user_attr("worker", lock_name)
                _beat(study, trial)
            notify()
            try:
                with _heartbeat(study, trial):
                    outcome = trial_runner.run(trial, notify)
            except KeyboardInterrupt:
                _tell(study, trial, _outcome("interrupted", "stopped at once by a second Ctrl-C"))
                notify()
                return "interrupted"
            except Exception as e:  # recorded on the trial (not left RUNNING), then raised as it was
                _tell(study, trial, _outcome("failed", f"error: {type(e).__name__}: {e}"))
                raise
            _tell(study, trial, outcome)
            notify()
            if outcome.state == "interrupted":
                return "interrupted"


def _outcome(state: str, reason: str) -> "Outcome":
    from .objective import Outcome

    return Outcome(state, reason=reason)


def _counted(study: "optuna.Study") -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)))


def _tell(study: "optuna.Study", trial: "optuna.Trial", outcome: "Outcome") -> None:
    from optuna.trial import TrialState

    attrs = dict(outcome.attrs)
    if outcome.reason:
        attrs["reason"] = outcome.reason
    known = trial.user_attrs
    for k, v in attrs.items():
        if known.get(k) != v:
            trial.set_user_attr(k, v)
    if outcome.state == "complete":
        study.tell(trial, outcome.values)
    elif outcome.state == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        frozen = study.tell(trial, state=TrialState.FAIL)
        if outcome.state == "interrupted":  # not the trial's fault: always run it again on --resume
            requeue(study, frozen, once=False)


def requeue(study: "optuna.Study", trial: "optuna.trial.FrozenTrial", once: bool) -> None:
    """Queue a failed trial's parameters to run again (``once``: not if it was itself a re-run)."""
    optuna = require_optuna()
    origin = trial.user_attrs.get("retry_of")
    if once and origin is not None:
        return
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        user_attrs={"retry_of": trial.number if origin is None else origin}))


def recover(study: "optuna.Study", study_dir: StudyDir, journal: bool) -> list[int]:
    """Fail and re-queue (once) the RUNNING trials whose worker is dead; returns their numbers. Called with
    the study directory locked. Journal: a worker's lock file tells (a trial not yet claimed while the lock is
    held lost its worker between ask and claim; a lock file gone is a worker gone). Databases: Optuna's
    heartbeats."""
    optuna = require_optuna()
    from optuna.trial import TrialState

    dead = []
    if journal:  # every worker of a journal study runs on this machine: no lock held, no worker
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            lock = t.user_attrs.get("worker")
            if lock is None or not study_dir.worker_alive(lock):
                frozen = study.tell(t.number, state=TrialState.FAIL)
                requeue(study, frozen, once=True)
                _mark_stopped(t)
                dead.append(t.number)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    return dead


def _mark_stopped(trial: "optuna.trial.FrozenTrial") -> None:
    """The run directory of a trial whose worker died says so (it stays, as any interrupted run)."""
    run = trial.user_attrs.get("run_dir")
    if run and os.path.isfile(os.path.join(run, "run.json")):
        from ..engine.rundir import RunDir

        RunDir(run).update_run(status="failed", message="its search worker stopped (killed or crashed); "
                                                        "the trial was queued to run again")


def _beat(study: "optuna.Study", trial: "optuna.Trial") -> None:
    storage = study._storage  # noqa: SLF001 - Optuna has no public handle on a trial's heartbeat
    if getattr(storage, "get_heartbeat_interval", lambda: None)():
        storage.record_heartbeat(trial._trial_id)  # noqa: SLF001


@contextlib.contextmanager
def _heartbeat(study: "optuna.Study", trial: "optuna.Trial") -> Iterator[None]:
    """Database storages: record the trial's heartbeat in the background while it runs."""
    storage = study._storage  # noqa: SLF001
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            storage.record_heartbeat(trial._trial_id)  # noqa: SLF001

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
