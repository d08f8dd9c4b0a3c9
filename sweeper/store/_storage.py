"""Open the study store: Optuna's RDB storage on SQLAlchemy, set up for several writers."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage

from sweeper._redact import redact
from sweeper.errors import StoreError
from sweeper.store._bulk import Storage
from sweeper.store._retry import (
    describe_store,
    fault_error,
    first_line,
    is_transient,
    store_error,
)

HEARTBEAT_S = 10
GRACE_S = 40
OPEN_ATTEMPTS = 5


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite store URL (None for other stores and in-memory SQLite)."""
    m = re.match(r"^sqlite(\+\w+)?:///(.+)$", url)
    if not m or m.group(2) == ":memory:":
        return None
    return Path(m.group(2))


def artifact_dir(url: str, override: str | None = None) -> Path:
    """Where the study's artifacts (gate plots) live: `override`, else a folder beside the
    SQLite file (`sweeps.db` -> `sweeps-artifacts/`), else `sweeper-artifacts/` here."""
    if override:
        return Path(override)
    path = sqlite_path(url)
    if path is not None:
        return path.with_name(f"{path.stem}-artifacts")
    return Path("sweeper-artifacts")


def _prepare_sqlite(path: Path, write: bool) -> None:
    """WAL lets readers (dashboard, `sweeper status`) and one writer work at once; the busy
    timeout makes writers from several processes wait for each other instead of failing.
    A store a run must write is checked for write permission first (file and folder: SQLite
    writes its -wal and -shm files beside the file)."""
    if path.parent and not path.parent.exists():
        raise StoreError(
            f"folder {str(path.parent)!r} of the SQLite store does not exist; create it"
        )
    if write:
        for target in (path, path.parent):
            if target.exists() and not os.access(target, os.W_OK):
                raise store_error("read-only", f"{target} cannot be written", "opening it")
    con = sqlite3.connect(path, timeout=60)
    try:
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL + synchronous=NORMAL: a commit is not fsynced until the WAL checkpoint. A killed
    # process loses nothing; only a power cut can roll back the last commits, and the file is
    # never corrupted. It makes each of the driver's small writes several times cheaper.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _tune_sqlite(storage: RDBStorage) -> None:
    from sqlalchemy import event

    event.listen(storage.engine, "connect", _sqlite_pragmas)
    storage.engine.dispose()  # connections opened before the listener go


def trials_in_states(storage: Any, study_id: int, states: tuple[Any, ...]) -> list[Any]:
    """Trials in `states` only, filtered by the database. (Optuna's cached storage, which
    `optuna.load_study` returns, reads every trial of the study before it filters.)"""
    backend = getattr(storage, "_backend", storage)
    return list(backend.get_all_trials(study_id, deepcopy=False, states=states))


def _rdb(storage: Any) -> RDBStorage | None:
    backend = getattr(storage, "_backend", storage)  # Optuna wraps RDBStorage in a cache
    return backend if isinstance(backend, RDBStorage) else None


def user_attr_values(storage: Any, study_id: int, key: str) -> list[Any]:
    """The values of one trial user attribute over the study, read from that attribute's
    rows alone (e.g. the seconds probes saved, without loading every stopped trial)."""
    rdb = _rdb(storage)
    if rdb is None:
        trials = storage.get_all_trials(study_id, deepcopy=False)
        return [t.user_attrs[key] for t in trials if key in t.user_attrs]
    from optuna.storages._rdb import models
    from sqlalchemy import select

    attr, trial = models.TrialUserAttributeModel, models.TrialModel
    query = (
        select(attr.value_json)
        .join(trial, trial.trial_id == attr.trial_id)
        .where(trial.study_id == study_id, attr.key == key)
    )
    with rdb.engine.connect() as con:
        return [json.loads(v) for (v,) in con.execute(query)]


def weights_holders(storage: Any, study_id: int, key: str) -> list[tuple[int, int, float, Any]]:
    """(trial_id, number, value, attr value) of the finished trials that hold user attr `key`
    (the kept weights), read from that attribute's rows and the trials' values alone."""
    rdb = _rdb(storage)
    if rdb is None:
        trials = storage.get_all_trials(study_id, deepcopy=False)
        return [
            (t._trial_id, t.number, float(t.values[0]), t.user_attrs[key])
            for t in trials
            if key in t.user_attrs and t.values
        ]
    from optuna.storages._rdb import models
    from sqlalchemy import select

    attr, trial, value = models.TrialUserAttributeModel, models.TrialModel, models.TrialValueModel
    query = (
        select(trial.trial_id, trial.number, value.value, value.value_type, attr.value_json)
        .join(attr, attr.trial_id == trial.trial_id)
        .join(value, value.trial_id == trial.trial_id)
        .where(trial.study_id == study_id, attr.key == key, value.objective == 0)
    )
    with rdb.engine.connect() as con:
        return [  # an infinite value is stored as NULL and its type
            (tid, n, value.stored_repr_to_value(v, kind), json.loads(a))
            for tid, n, v, kind, a in con.execute(query)
        ]


def drop_trial_attrs(
    storage: Any, trial_id: int, user_keys: list[str], system_keys: list[str]
) -> None:
    """Delete attributes of a finished trial (Optuna's API only writes to running trials):
    the record of weights that retention removed. A no-op for storages that are not SQL."""
    rdb = _rdb(storage)
    if rdb is None:
        return
    from optuna.storages._rdb import models
    from sqlalchemy import delete

    with rdb.engine.begin() as con:
        for model, keys in (
            (models.TrialUserAttributeModel, user_keys),
            (models.TrialSystemAttributeModel, system_keys),
        ):
            if keys:
                con.execute(delete(model).where(model.trial_id == trial_id, model.key.in_(keys)))


def last_trials(storage: Any, study_id: int, states: tuple[Any, ...], n: int) -> list[Any]:
    """The `n` highest-numbered trials in `states`, oldest first."""
    rdb = _rdb(storage)
    if rdb is None:
        return trials_in_states(storage, study_id, states)[-n:]
    from optuna.storages._rdb import models
    from sqlalchemy import select

    trial = models.TrialModel
    query = (
        select(trial.trial_id)
        .where(trial.study_id == study_id, trial.state.in_(states))
        .order_by(trial.number.desc())
        .limit(n)
    )
    with rdb.engine.connect() as con:
        ids = [tid for (tid,) in con.execute(query)]
    return [rdb.get_trial(tid) for tid in reversed(ids)]


def state_counts(storage: Any, study_id: int) -> dict[str, int]:
    """Trials per state (lower-case names), counted by the database, not by loading every
    trial. Falls back to Optuna's API for storages that are not SQL."""
    rdb = _rdb(storage)
    if rdb is not None:
        from optuna.storages._rdb import models
        from sqlalchemy import func, select

        query = (
            select(models.TrialModel.state, func.count())
            .where(models.TrialModel.study_id == study_id)
            .group_by(models.TrialModel.state)
        )
        with rdb.engine.connect() as con:
            return {state.name.lower(): int(n) for state, n in con.execute(query)}
    counts: dict[str, int] = {}
    for t in storage.get_all_trials(study_id, deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    return counts


def engine_kwargs(url: str) -> dict[str, Any]:
    """SQLAlchemy engine options for the store's dialect (timeouts, pool)."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    # a bounded pool that checks connections before use, so a restarted server is survived
    return {"pool_pre_ping": True, "pool_size": 4, "max_overflow": 4, "pool_recycle": 1800}


def quiet_optuna() -> None:
    """sweeper uses a few of Optuna's experimental APIs on purpose (heartbeats, metric names);
    their warnings and Optuna's per-trial INFO lines would only bury sweeper's own output."""
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def open_storage(url: str, heartbeat: bool = True, create: bool = True) -> RDBStorage:
    """Open (creating tables if needed) the store at `url`. Errors never show the password.
    With `create=False` (the read-only commands) an SQLite file that does not exist is an
    error, never a new empty store.

    Two drivers opening a new database at once race to create Optuna's tables; the loser
    sees a duplicate-key error and simply tries again, as it does for a store that is still
    starting up (for a few seconds, then it says what is wrong)."""
    quiet_optuna()
    path = sqlite_path(url)
    kwargs: dict[str, Any] = {}
    if heartbeat:
        # stale trials are failed and re-queued by sweeper.orchestrator's recovery, which
        # records why on the trial first (Optuna's callback runs after the trial is closed)
        kwargs = {"heartbeat_interval": HEARTBEAT_S, "grace_period": GRACE_S}
    if path is not None and not create and not path.exists():
        from sweeper.errors import StudyNotFoundError

        raise StudyNotFoundError(
            f"no study store at {path}: run a study first (`sweeper run DEFINITION`), or "
            "point --storage at the store it used"
        )
    describe_store(str(path) if path is not None else redact(url))
    for attempt in range(OPEN_ATTEMPTS):
        try:
            if path is not None:
                _prepare_sqlite(path, write=create)
            storage = Storage(url, engine_kwargs=engine_kwargs(url), **kwargs)
            if path is not None:
                _tune_sqlite(storage)
            return storage
        except StoreError:
            raise
        except ModuleNotFoundError as e:
            raise StoreError(
                f"cannot open store {redact(url)}: driver {e.name!r} is not installed; "
                "for PostgreSQL run: pip install 'sweeper[postgres]'"
            ) from None
        except Exception as e:
            if "no longer compatible with the table schema" in str(e):
                raise StoreError(
                    f"cannot open store {redact(url)}: its tables were written by a newer "
                    "Optuna (and sweeper) than this one; upgrade here (pip install -U sweeper "
                    "optuna), or use another store"
                ) from None
            fault = fault_error(e, "opening it")
            if fault is not None:
                raise fault from None
            again = is_transient(e) or _schema_race(e)
            if again and attempt + 1 < OPEN_ATTEMPTS:
                time.sleep(0.5 * (attempt + 1))
                continue
            raise StoreError(f"cannot open store {redact(url)}: {first_line(e)}") from None
    raise AssertionError("unreachable")


def _schema_race(error: BaseException) -> bool:
    text = f"{error} {error.__cause__}"
    # PostgreSQL: "duplicate key"; SQLite: "UNIQUE constraint failed" (alembic_version)
    return any(m in text for m in ("duplicate key", "already exists", "UNIQUE constraint failed"))


def study_names(storage: RDBStorage) -> list[str]:
    """The names of the studies in a store."""
    return [s.study_name for s in storage.get_all_studies()]


def load_study(storage: RDBStorage | str, name: str) -> optuna.Study:
    """A stored study by name; StoreError naming the studies there when it is missing."""
    st = (
        open_storage(storage, heartbeat=False, create=False)
        if isinstance(storage, str)
        else storage
    )
    try:
        return optuna.load_study(study_name=name, storage=st)
    except KeyError:
        from sweeper.errors import StudyNotFoundError

        names = study_names(st)
        raise StudyNotFoundError(
            f"no study named {name!r} in the store; studies there: {names or 'none'}"
        ) from None
