"""sweeper's bulk trial reader builds exactly the trials Optuna's own ORM reader builds, for
every kind of trial and every way Optuna's cached storage asks for them."""

from __future__ import annotations

import math
import time

import optuna
import pytest
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.trial import TrialState, create_trial
from sqlalchemy import select

from sweeper.store import open_storage
from sweeper.store._bulk import Storage, record_heartbeats, record_reports, set_trial_attrs

DISTS = {
    "lr": FloatDistribution(1e-5, 1.0, log=True),
    "dropout": FloatDistribution(0.0, 0.5, step=0.1),
    "width": IntDistribution(8, 256, log=True),
    "layers": IntDistribution(1, 6, step=1),
    "init": CategoricalDistribution(["default", None, True, 3, 0.5]),
}


def _fill(study: optuna.Study) -> None:
    kinds = [
        dict(state=TrialState.COMPLETE, values=[0.5]),
        dict(state=TrialState.COMPLETE, values=[math.inf]),
        dict(state=TrialState.PRUNED, values=None),
        dict(state=TrialState.FAIL, values=None),
    ]
    for i in range(24):
        kinds[1]["values"] = [math.inf if i % 8 else -math.inf]  # type: ignore[index]
        kind = kinds[i % len(kinds)]
        study.add_trial(
            create_trial(
                params={
                    "lr": 10 ** -(1 + i % 4),
                    "dropout": (i % 6) / 10,
                    "width": 8 * (1 + i % 8),
                    "layers": 1 + i % 6,
                    "init": DISTS["init"].choices[i % 5],  # type: ignore[attr-defined]
                },
                distributions=DISTS,
                intermediate_values={0: 1.0, 1: math.nan, 2: math.inf, 3: -math.inf, 4: 0.25 * i},
                user_attrs={"findings": [{"probe": "x", "details": {"n": i}}], "note": "é"},
                system_attrs={"driver": f"host:{i}"},
                **kind,  # type: ignore[arg-type]
            )
        )
    running = study.ask(DISTS)  # RUNNING, params set
    running.report(0.5, 0)
    study.ask()  # RUNNING, nothing set
    study.enqueue_trial({"lr": 0.01}, user_attrs={"retry_of": 3})  # WAITING


def _plain(trial: object) -> str:
    """A trial as text, dicts in key order (nan equals nan here, unlike in ==)."""
    fields = {
        k: sorted(v.items(), key=str) if isinstance(v, dict) else v for k, v in vars(trial).items()
    }
    return repr(sorted(fields.items()))


def _both(storage: Storage, *args: object) -> tuple[list[str], list[str]]:
    ours = storage._get_trials(*args)  # type: ignore[arg-type]
    optunas = RDBStorage._get_trials(storage, *args)  # type: ignore[arg-type]
    return [_plain(t) for t in ours], [_plain(t) for t in optunas]


def test_reads_what_optunas_reader_reads(store_url: str) -> None:
    storage = open_storage(store_url)
    assert isinstance(storage, Storage)
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    _fill(study)
    other = optuna.create_study(storage=storage, directions=["minimize", "maximize"])
    other.add_trial(create_trial(params={}, distributions={}, values=[1.0, -math.inf]))
    ours, optunas = _both(storage, other._study_id, None, set(), -1)
    assert ours == optunas and "[1.0, -inf]" in ours[0]
    sid = study._study_id
    ours, optunas = _both(storage, sid, None, set(), -1)
    assert len(ours) == 27 and ours == optunas
    assert [t.number for t in storage._get_trials(sid, None, set(), -1)] == list(range(27))
    for states in ((TrialState.RUNNING,), (TrialState.WAITING, TrialState.PRUNED)):
        ours, optunas = _both(storage, sid, states, set(), -1)
        assert ours == optunas and ours
    # Optuna's cached storage: the unfinished trials it holds, and every newer trial
    ids = [t._trial_id for t in storage.get_all_trials(sid)]
    ours, optunas = _both(storage, sid, None, {ids[2], ids[24], ids[25]}, ids[20])
    assert ours == optunas
    picked = storage._get_trials(sid, None, {ids[2], ids[24], ids[25]}, ids[20])
    assert {t._trial_id for t in picked} == {ids[2], *ids[21:]}
    with pytest.raises(KeyError):
        storage._get_trials(10_000, None, set(), -1)
    for tid in ids:  # one trial, as Optuna's ask and tell read it
        assert _plain(storage.get_trial(tid)) == _plain(RDBStorage.get_trial(storage, tid))
    with pytest.raises(KeyError):
        storage.get_trial(10_000)


def test_a_loaded_study_reads_through_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=open_storage(url), study_name="s")
    _fill_single = [
        create_trial(params={"x": i}, distributions={"x": IntDistribution(0, 9)}, value=i)
        for i in range(10)
    ]
    study.add_trials(_fill_single)
    loaded = optuna.load_study(study_name="s", storage=open_storage(url))
    assert isinstance(loaded._storage._backend, Storage)  # type: ignore[attr-defined]
    assert loaded.best_trial.number == 0
    assert [t.params["x"] for t in loaded.trials] == list(range(10))


def test_a_trials_marks_are_written_together(store_url: str) -> None:
    storage = open_storage(store_url)
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    tid = trial._trial_id
    set_trial_attrs(storage, tid, {"a": [1, 2]}, {"driver": "h:1:2"}, heartbeat=True)
    set_trial_attrs(storage, tid, {"a": 3, "b": {"x": None}}, heartbeat=True)  # a retry: same end
    frozen = storage.get_trial(tid)
    assert frozen.user_attrs == {"a": 3, "b": {"x": None}}
    assert frozen.system_attrs == {"driver": "h:1:2"}
    with storage.engine.connect() as con:
        table = models.TrialHeartbeatModel.__table__
        beats = con.execute(select(table.c.trial_id).where(table.c.trial_id == tid)).all()
    assert len(beats) == 1
    study.tell(trial, 1.0)
    with pytest.raises(RuntimeError, match="finished"):  # Optuna's own check still applies
        set_trial_attrs(storage, tid, {"c": 1})
    # any other Optuna storage: one call each
    memory = optuna.create_study()
    other = memory.ask()
    set_trial_attrs(memory._storage, other._trial_id, {"u": 1}, {"s": 2})
    assert memory.trials[0].user_attrs == {"u": 1} and memory.trials[0].system_attrs == {"s": 2}


def test_heartbeats_of_running_trials_in_one_statement(store_url: str) -> None:
    storage = open_storage(store_url)
    study = optuna.create_study(storage=storage)
    trials = [study.ask() for _ in range(3)]
    ids = [t._trial_id for t in trials]
    for tid in ids:
        set_trial_attrs(storage, tid, system={"driver": "me"}, heartbeat=True)
    table = models.TrialHeartbeatModel.__table__

    def beats() -> dict[int, object]:
        with storage.engine.connect() as con:
            return dict(con.execute(select(table.c.trial_id, table.c.heartbeat)).all())

    before = beats()
    time.sleep(1.1)  # the store's clock has a resolution of a second on SQLite
    record_heartbeats(storage, ids[:2])
    after = beats()
    assert [after[i] > before[i] for i in ids] == [True, True, False]  # type: ignore[operator]
    # Optuna's own staleness test reads them: none of the three is stale
    assert storage._get_stale_trial_ids(study._study_id) == []


def test_reports_of_several_trials_are_written_together(store_url: str) -> None:
    storage = open_storage(store_url)
    study = optuna.create_study(storage=storage)
    a, b, c = (study.ask() for _ in range(3))
    study.tell(c, 1.0)  # finished: another driver took it over
    reports = [(a._trial_id, 0, 0.5), (b._trial_id, 0, math.inf), (a._trial_id, 1, -math.inf)]
    assert record_reports(storage, reports + [(c._trial_id, 0, 2.0)]) == {c._trial_id}
    assert record_reports(storage, reports[:1] + [(b._trial_id, 1, math.nan)]) == set()  # a retry
    # what Optuna reads back is what its own report() would have written
    plain = optuna.create_study()
    pa, pb, pc = (plain.ask() for _ in range(3))
    steps = [(pa, 0, 0.5), (pb, 0, math.inf), (pa, 1, -math.inf), (pb, 1, math.nan)]
    for trial, step, value in steps:
        trial.report(value, step)
    for ours, theirs in ((a, pa), (b, pb)):
        got = storage.get_trial(ours._trial_id).intermediate_values
        want = plain._storage.get_trial(theirs._trial_id).intermediate_values
        assert repr(sorted(got.items())) == repr(sorted(want.items())) and len(got) == 2
    assert storage.get_trial(c._trial_id).intermediate_values == {}
    # any other Optuna storage: one call each, a finished trial named the same way
    plain.tell(pc, 1.0)
    done = record_reports(plain._storage, [(pa._trial_id, 2, 0.1), (pc._trial_id, 0, 1.0)])
    assert done == {pc._trial_id}
    assert plain.trials[0].intermediate_values[2] == 0.1
    with pytest.raises(KeyError):
        record_reports(storage, [(10**9, 0, 1.0)])
