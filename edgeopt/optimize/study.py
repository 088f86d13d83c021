"""The Optuna study behind `edgeopt optimize`: its storage (SQLite in the output folder by default, PostgreSQL for
several workers), its sampler, its objectives and constraints, and the bookkeeping that makes it resumable.

The study is the state: completed and pruned trials are never rerun (``--trials N`` counts them, across every
worker), a trial left RUNNING by a killed process is marked failed and its choices are retried once (this
machine's dead PIDs at once; other machines' through Optuna's heartbeat)."""

from __future__ import annotations

import logging
import os
import socket
import warnings
from pathlib import Path
from typing import Any

from edgeopt.errors import UsageError

log = logging.getLogger(__name__)

DIRECTIONS = ("maximize", "minimize", "minimize")  # accuracy (validation), p90 ms, size bytes
OBJECTIVES = ("accuracy", "p90_ms", "size_bytes")
COUNTED = ("COMPLETE", "PRUNED")  # what --trials counts
HEARTBEAT_S = 20
GRACE_S = 60
STORAGE_FIX = ("give --storage as sqlite:///path/study.db or postgresql://user@host:port/dbname "
               "(psycopg is installed with edgeopt)")


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def storage_url(storage: str | None, out: Path) -> str:
    """The SQLAlchemy URL for ``--storage`` (default: ``sqlite:///<out>/study.db``); plain ``postgresql://`` and
    ``postgres://`` use the psycopg 3 driver. A URL of another kind is a UsageError."""
    if storage is None:
        return f"sqlite:///{(out / 'study.db').resolve()}"
    scheme, sep, rest = storage.partition("://")
    if not sep or not rest:
        raise UsageError(f"--storage {storage!r} is not a database URL", STORAGE_FIX)
    scheme = scheme.lower()
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return f"postgresql+psycopg://{rest}"
    if scheme == "sqlite":
        return storage
    raise UsageError(f"--storage {storage!r}: edgeopt stores studies in SQLite or PostgreSQL, not {scheme}",
                     STORAGE_FIX)


def shown_url(url: str) -> str:
    """The URL without a password (for messages and front.json)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 — only for display
        return url.split("@")[-1]


# what two workers creating a fresh database's tables at the same moment raise (optuna/optuna#1092: RDBStorage's
# create_all + alembic stamp is not safe against itself); the loser retries and finds the tables made
SCHEMA_RACE = ("already exists", "unique constraint failed", "duplicate key", "database is locked")
SCHEMA_TRIES = 10


def open_storage(url: str):
    """An Optuna RDBStorage at ``url`` with a heartbeat (a dead worker's trial is failed and retried); a server
    that cannot be reached or a database that cannot be opened is a UsageError with the fix. Workers that start
    together on a fresh database race to create its tables: the losers retry (SCHEMA_RACE)."""
    import random
    import time

    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.logging.disable_default_handler()  # its records go through edgeopt's logging (cli/logs), not stderr
    if not any(getattr(h, "_edgeopt", False) for h in logging.getLogger("optuna").handlers):
        optuna.logging.enable_propagation()  # the Python API: to the caller's logging; the CLI's log file otherwise
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        kwargs["connect_args"] = {"connect_timeout": 10}
    elif url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}  # wait for another worker's write, not "database is locked"
    attempt = 0
    while True:
        attempt += 1
        try:
            return RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))
        except Exception as e:  # noqa: BLE001 — sqlalchemy/psycopg raise many kinds; all mean "cannot use it"
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            if attempt >= SCHEMA_TRIES or not any(m in first.lower() for m in SCHEMA_RACE):
                raise UsageError(f"--storage {shown_url(url)}: cannot open the study storage ({first})",
                                 STORAGE_FIX) from None
        log.debug("storage %s: %s (another worker is creating it; retry %d)", shown_url(url), first, attempt)
        time.sleep(random.uniform(0.1, 0.5))


def make_sampler(kind: str, seed: int):
    """TPE (multi-objective) by default; NSGA-II on request. Both read the budgets as the constraints every trial
    sets (``Trial.set_constraint``, one per budget key: ≤ 0 = met). TPE models good vs bad trials from its 8th
    trial on, where NSGA-II's first generation is random sampling — optimize runs tens of trials, not hundreds
    (benchmarks/optimize_sampler.py measures the two)."""
    from optuna.samplers import NSGAIISampler, TPESampler

    if kind == "nsga2":
        return _tagging(NSGAIISampler)(seed=seed, population_size=10)
    return _tagging(TPESampler)(seed=seed, n_startup_trials=8, multivariate=True, group=True, constant_liar=True)


def _tagging(sampler_class):
    """``sampler_class`` that writes the trial's ``worker`` (host:pid) as the first thing after Optuna creates the
    trial — before sampling, which takes a while under TPE — so a worker killed at any later moment leaves a
    RUNNING trial that fail_dead_local_trials can tell is its own."""

    class Tagging(sampler_class):
        def before_trial(self, study, trial) -> None:
            study._storage.set_trial_user_attr(trial._trial_id, "worker", worker_id())
            super().before_trial(study, trial)

    Tagging.__name__ = Tagging.__qualname__ = f"Worker{sampler_class.__name__}"
    return Tagging


def open_study(url: str, name: str, sampler_kind: str, seed: int, load_only: bool = False):
    import optuna

    storage = open_storage(url)
    sampler = make_sampler(sampler_kind, seed)
    try:
        if load_only:
            return optuna.load_study(study_name=name, storage=storage, sampler=sampler)
        study = optuna.create_study(storage=storage, study_name=name, sampler=sampler, load_if_exists=True,
                                    directions=list(DIRECTIONS))
    except KeyError:
        raise UsageError(f"study '{name}' is not in {shown_url(url)}",
                         "run the optimize command without --worker first, or check --study") from None
    if [d.name.lower() for d in study.directions] != list(DIRECTIONS):
        raise UsageError(f"study '{name}' in {shown_url(url)} was not made by edgeopt optimize",
                         "pick another --study name")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(OBJECTIVES))
    return study


def check_same_problem(study, problem: dict[str, Any]) -> None:
    """The study's model, data, target, budgets and space, set by its first run; a rerun (or a worker) with other
    ones would mix candidates of different problems in one front."""
    had = study.user_attrs.get("problem")
    if had is None:
        study.set_user_attr("problem", problem)
        return
    diff = _first_difference(had, problem)
    if diff:
        where, old, new = diff
        raise UsageError(f"study '{study.study_name}' was started with another {where} "
                         f"({_short(old)} instead of {_short(new)})",
                         "rerun with the same MODEL/--data/--target/--budgets/--recipe, or give a new --study or --out")


MISSING = "(not set)"


def _first_difference(had: Any, now: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The first (dotted key, value then, value now) where two problem records differ, down to the nested key
    (``space.holdout``: a setting the study's first run did not have), or None."""
    if isinstance(had, dict) and isinstance(now, dict):
        for k in sorted(set(had) | set(now)):
            if had.get(k, MISSING) != now.get(k, MISSING):
                return _first_difference(had.get(k, MISSING), now.get(k, MISSING), f"{path}.{k}" if path else k)
        return None
    return None if had == now else (path, had, now)


def _short(v: Any) -> str:
    if v is MISSING:
        return v
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def fail_dead_local_trials(study) -> list[int]:
    """RUNNING trials whose worker was a process on this machine that is gone (a kill -9, a power cut): failed
    now, and re-enqueued by the retry callback, instead of after the heartbeat's grace period."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    from edgeopt.out_folder import _alive

    host = socket.gethostname()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        who = str(t.user_attrs.get("worker", ""))
        owner, _, pid = who.rpartition(":")
        if owner != host or not pid.isdigit() or _alive(int(pid)):
            continue
        if study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
            failed.append(t.number)
            RetryHeartbeatStaleTrialCallback(max_retry=1)(study, study._storage.get_trial(t._trial_id))
            log.info("trial %d was left running by dead process %s: failed, its choices queued again", t.number, who)
    return failed

