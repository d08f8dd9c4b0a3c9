"""The study view the driver's sampler and pruner read: one snapshot per interval, this
driver's running trials exact, and the same pruning decisions as on the study itself."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from sweeper.search._view import ViewPruner, ViewSampler, read_through

DISTS = {"x": FloatDistribution(0.0, 1.0)}


def _study(tmp_path) -> optuna.Study:  # type: ignore[no-untyped-def]
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 's.db'}",
        sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=3, constant_liar=True),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )
    study.add_trials(
        [
            create_trial(
                params={"x": i / 20},
                distributions=DISTS,
                value=float(i),
                intermediate_values={0: float(i), 1: float(i)},
            )
            for i in range(20)
        ]
    )
    return study


def test_view_reads_one_snapshot_per_interval_and_sees_own_running_trials(tmp_path) -> None:  # type: ignore[no-untyped-def]
    study = _study(tmp_path)
    view = read_through(study, every=3600)
    assert isinstance(study.sampler, ViewSampler) and isinstance(study.pruner, ViewPruner)
    assert len(view.get_trials(states=(TrialState.COMPLETE,))) == 20
    reads = view.reads
    trial = study.ask(DISTS)  # the sampler reads the view: no new snapshot within the hour
    assert view.reads == reads
    assert trial.number not in [t.number for t in view.get_trials()]  # not told to the view
    view.running(study._storage.get_trial(trial._trial_id))
    running = view.get_trials(states=(TrialState.RUNNING,))
    assert [t.number for t in running] == [trial.number]
    study.tell(trial, 0.5)
    view.done(trial._trial_id)  # told: the next read is a new snapshot, with it finished
    assert view.get_trials(states=(TrialState.RUNNING,)) == []
    assert view.reads == reads + 1
    assert trial.number in [t.number for t in view.get_trials(states=(TrialState.COMPLETE,))]


def test_view_prunes_as_the_study_itself_would(tmp_path) -> None:  # type: ignore[no-untyped-def]
    study = _study(tmp_path)
    plain = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    read_through(study, every=0.0)
    for value, expected in ((1.0, False), (30.0, True)):
        trial = study.ask(DISTS)
        trial.report(value, 0)
        frozen = study._storage.get_trial(trial._trial_id)
        assert bool(plain.prune(study, frozen)) is expected
        assert bool(trial.should_prune()) is expected
        study.tell(trial, state=TrialState.PRUNED)
