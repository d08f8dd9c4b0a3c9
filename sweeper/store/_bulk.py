"""Optuna's RDB storage, reading many trials at once and writing a trial's marks together.

Every listing of a study's trials (Optuna's cached storage on a study's first read and on each
re-read of running trials, `status`, `best`) ends in `RDBStorage._get_trials`, which loads each
trial and each of its params, values, attributes and reports as ORM objects: 8 s for a study of
10,000 trials on SQLite here, before a resumed driver's first ask could run. `Storage` answers
the same call with one SELECT per table (six in all, however many trials) and builds the same
`FrozenTrial`s from the rows; a test keeps the two readers equal on every kind of trial.

`set_trial_attrs` writes several of a trial's attributes (and its first heartbeat) in one
transaction, through Optuna's own per-attribute statements: the driver marks each trial it
starts and finishes with several, and each was a commit of its own. `record_reports` writes
the epochs that several trials finished together in one transaction (Optuna's `report` is two
SELECTs, an INSERT and a commit for each). Everything else is Optuna's own code.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Container, Iterable
from typing import Any

from optuna import distributions
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import func, insert, or_, select, update

_UTC = dt.timezone.utc


class _LocalTime:
    """The store keeps naive UTC; FrozenTrial carries naive local time, as Optuna converts it.
    The offset is looked up once per UTC quarter-hour (time zones change offset on quarter
    hours), not once per timestamp."""

    def __init__(self) -> None:
        self._offsets: dict[dt.datetime, dt.timedelta] = {}

    def __call__(self, stamp: dt.datetime | None) -> dt.datetime | None:
        if stamp is None:
            return None
        quarter = stamp.replace(minute=stamp.minute - stamp.minute % 15, second=0, microsecond=0)
        offset = self._offsets.get(quarter)
        if offset is None:
            local = quarter.replace(tzinfo=_UTC).astimezone().replace(tzinfo=None)
            offset = self._offsets[quarter] = local - quarter
        return stamp + offset


class Storage(RDBStorage):
    """Optuna's RDB storage, reading trials in a few queries instead of several per trial."""

    def _get_trials(
        self,
        study_id: int,
        states: Container[TrialState] | None,
        included_trial_ids: set[int],
        trial_id_greater_than: int,
    ) -> list[FrozenTrial]:
        trial = models.TrialModel.__table__
        where: list[Any] = [trial.c.study_id == study_id]
        if states is not None:
            assert isinstance(states, Iterable)
            where.append(trial.c.state.in_(list(states)))
        included = [i for i in included_trial_ids if i <= trial_id_greater_than]
        if trial_id_greater_than > -1:
            newer = trial.c.trial_id > trial_id_greater_than
            # the running trials to re-read are few (one per slot): bound as parameters
            where.append(or_(trial.c.trial_id.in_(included), newer) if included else newer)
        with self.engine.connect() as con:
            study = models.StudyModel.__table__
            exists = select(study.c.study_id).where(study.c.study_id == study_id)
            if con.execute(exists).first() is None:
                raise KeyError(models.NOT_FOUND_MSG)
            return _read(con, where)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        """One trial, read with the bulk reader."""
        trial = models.TrialModel.__table__
        with self.engine.connect() as con:
            found = _read(con, [trial.c.trial_id == trial_id])
        if not found:
            raise KeyError(models.NOT_FOUND_MSG)
        return found[0]

    def set_trial_attrs(
        self,
        trial_id: int,
        user: dict[str, Any],
        system: dict[str, Any],
        heartbeat: bool = False,
    ) -> None:
        """Set `user` and `system` attributes of a trial, and with `heartbeat` record its first
        heartbeat, in one transaction (written again whole if it is retried)."""
        with _create_scoped_session(self.scoped_session, True) as session:
            for model, attrs in (
                (models.TrialUserAttributeModel, user),
                (models.TrialSystemAttributeModel, system),
            ):
                for key, value in attrs.items():
                    self._set_trial_attr_without_commit(session, model, trial_id, key, value)
            if heartbeat and models.TrialHeartbeatModel.where_trial_id(trial_id, session) is None:
                session.add(models.TrialHeartbeatModel(trial_id=trial_id))

    def record_reports(self, reports: list[tuple[int, int, float]]) -> set[int]:
        """Write `(trial_id, step, value)` reports in one transaction: one SELECT of the trials'
        states, one of the steps already there (a retried write whose first try did commit),
        one INSERT for the rest. A trial that is no longer running (another driver failed it
        after its heartbeat lapsed) gets none of its reports written: its id is returned, as
        Optuna's own write would raise UpdateFinishedTrialError for it."""
        trial = models.TrialModel.__table__
        steps = models.TrialIntermediateValueModel.__table__
        ids = sorted({tid for tid, _, _ in reports})
        numbers = sorted({step for _, step, _ in reports})
        to_stored = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr
        with self.engine.begin() as con:
            states = con.execute(
                select(trial.c.trial_id, trial.c.state).where(trial.c.trial_id.in_(ids))
            ).all()
            missing = set(ids) - {tid for tid, _ in states}
            if missing:
                raise KeyError(f"{models.NOT_FOUND_MSG} (trial ids {sorted(missing)})")
            finished = {tid for tid, state in states if TrialState(state).is_finished()}
            there = set(
                con.execute(
                    select(steps.c.trial_id, steps.c.step).where(
                        steps.c.trial_id.in_(ids), steps.c.step.in_(numbers)
                    )  # only the steps being written, however long the trials have run
                ).all()
            )
            rows: list[dict[str, Any]] = []
            updates: list[dict[str, Any]] = []
            for tid, step, value in reports:
                if tid in finished:
                    continue
                stored, kind = to_stored(value)
                row = {
                    "trial_id": tid,
                    "step": step,
                    "intermediate_value": stored,
                    "intermediate_value_type": kind,
                }
                (updates if (tid, step) in there else rows).append(row)
            if rows:
                con.execute(insert(steps), rows)
            for row in updates:
                con.execute(
                    update(steps)
                    .where(steps.c.trial_id == row["trial_id"], steps.c.step == row["step"])
                    .values(
                        intermediate_value=row["intermediate_value"],
                        intermediate_value_type=row["intermediate_value_type"],
                    )
                )
        return finished

    def record_heartbeats(self, trial_ids: list[int]) -> None:
        """One heartbeat for each of `trial_ids` (the database's clock), in one statement."""
        beats = models.TrialHeartbeatModel.__table__
        with self.engine.begin() as con:
            con.execute(
                update(beats)
                .where(beats.c.trial_id.in_(trial_ids))
                .values(heartbeat=func.current_timestamp())
            )


def _read(con: Any, where: list[Any]) -> list[FrozenTrial]:
    """The trials matching `where` (conditions on the trials table), in trial id order: one
    SELECT for the trials, then one per table of what they hold."""
    trial = models.TrialModel.__table__
    ids = select(trial.c.trial_id).where(*where)
    rows = con.execute(
        select(
            trial.c.trial_id,
            trial.c.number,
            trial.c.state,
            trial.c.datetime_start,
            trial.c.datetime_complete,
        )
        .where(*where)
        .order_by(trial.c.trial_id)
    ).all()
    values: dict[int, dict[int, float]] = {}
    params: dict[int, dict[str, Any]] = {}
    dists: dict[int, dict[str, distributions.BaseDistribution]] = {}
    steps: dict[int, dict[int, float]] = {}
    user: dict[int, dict[str, Any]] = {}
    system: dict[int, dict[str, Any]] = {}

    def children(model: Any, *columns: str) -> list[Any]:
        table = model.__table__
        key = table.primary_key.columns.values()[0]
        query = select(table.c.trial_id, *(table.c[c] for c in columns))
        return list(con.execute(query.where(table.c.trial_id.in_(ids)).order_by(key)).all())

    parsed: dict[str, distributions.BaseDistribution] = {}
    for tid, name, value, text in children(
        models.TrialParamModel, "param_name", "param_value", "distribution_json"
    ):
        dist = parsed.get(text)
        if dist is None:
            dist = parsed[text] = distributions.json_to_distribution(text)
        params.setdefault(tid, {})[name] = dist.to_external_repr(value)
        dists.setdefault(tid, {})[name] = dist
    to_value = models.TrialValueModel.stored_repr_to_value
    for tid, objective, value, kind in children(
        models.TrialValueModel, "objective", "value", "value_type"
    ):
        values.setdefault(tid, {})[objective] = to_value(value, kind)
    to_step = models.TrialIntermediateValueModel.stored_repr_to_intermediate_value
    for tid, step, value, kind in children(
        models.TrialIntermediateValueModel,
        "step",
        "intermediate_value",
        "intermediate_value_type",
    ):
        steps.setdefault(tid, {})[step] = to_step(value, kind)
    for model, into in (
        (models.TrialUserAttributeModel, user),
        (models.TrialSystemAttributeModel, system),
    ):
        for tid, key, text in children(model, "key", "value_json"):
            into.setdefault(tid, {})[key] = json.loads(text)
    out = []
    local = _LocalTime()
    for tid, number, state, start, complete in rows:
        own = values.get(tid)
        out.append(
            FrozenTrial(
                number=number,
                state=state,
                value=None,
                values=[own[k] for k in sorted(own)] if own else None,
                datetime_start=local(start),
                datetime_complete=local(complete),
                params=params.get(tid, {}),
                distributions=dists.get(tid, {}),
                user_attrs=user.get(tid, {}),
                system_attrs=system.get(tid, {}),
                intermediate_values=steps.get(tid, {}),
                trial_id=tid,
            )
        )
    return out


def _ours(storage: Any) -> Storage | None:
    backend = getattr(storage, "_backend", storage)  # Optuna wraps RDBStorage in a cache
    return backend if isinstance(backend, Storage) else None


def record_heartbeats(storage: Any, trial_ids: list[int]) -> None:
    """Heartbeats of the driver's running trials: one statement on sweeper's store (each has a
    heartbeat row from its start), one call each on any other storage."""
    ours = _ours(storage)
    if ours is not None:
        ours.record_heartbeats(trial_ids)
        return
    for trial_id in trial_ids:
        storage.record_heartbeat(trial_id)


def set_trial_attrs(
    storage: Any,
    trial_id: int,
    user: dict[str, Any] | None = None,
    system: dict[str, Any] | None = None,
    heartbeat: bool = False,
) -> None:
    """A trial's attributes (and first heartbeat) in one transaction on sweeper's store; one
    call each on any other Optuna storage."""
    ours = _ours(storage)
    if ours is not None:
        ours.set_trial_attrs(trial_id, user or {}, system or {}, heartbeat)
        return
    for key, value in (user or {}).items():
        storage.set_trial_user_attr(trial_id, key, value)
    for key, value in (system or {}).items():
        storage.set_trial_system_attr(trial_id, key, value)
    if heartbeat:
        storage.record_heartbeat(trial_id)


def record_reports(storage: Any, reports: list[tuple[int, int, float]]) -> set[int]:
    """Intermediate values `(trial_id, step, value)` of several trials: one transaction on
    sweeper's store, one call each on any other storage. Returns the ids of the trials that
    were already finished (none of their reports is written)."""
    if not reports:
        return set()
    ours = _ours(storage)
    if ours is not None:
        return ours.record_reports(reports)
    finished: set[int] = set()
    for trial_id, step, value in reports:
        if trial_id in finished:
            continue
        try:
            storage.set_trial_intermediate_value(trial_id, step, value)
        except UpdateFinishedTrialError:
            finished.add(trial_id)
    return finished
