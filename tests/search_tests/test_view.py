"""The study view the driver lists trials from: one snapshot per interval, this driver's trials
exact, and the same proposals and pruning decisions as on Optuna's own storage."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from sweeper.search._view import StudyView, read_through

DISTS = {"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(1e-4, 1.0, log=True)}


def _study(tmp_path, name: str = "s") -> optuna.Study:  # type: ignore[no-untyped-def]
    study = optuna.create_study(
        study_name=name,
        storage=f"sqlite:///{tmp_path / 's.db'}",
        sampler=optuna.samplers.TPESampler(
            seed=0, n_startup_trials=3, multivariate=True, constant_liar=True
        ),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )
    study.add_trials(
        [
            create_trial(
                params={"x": i / 20, "y": 0.01},
                distributions=DISTS,
                value=float(i),
                intermediate_values={0: float(i), 1: float(i)},
            )
            for i in range(20)
        ]
    )
    return study


def test_asks_and_tells_read_no_new_snapshot_and_own_trials_are_exact(tmp_path) -> None:  # type: ignore[no-untyped-def]
    study = _study(tmp_path)
    view = read_through(study, every=3600)
    assert isinstance(study._storage, StudyView)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 20
    reads = view.reads
    trial = study.ask(DISTS)  # ask()'s WAITING check and the sampler: no new snapshot
    view.running(trial._cached_frozen_trial)
    running = study.get_trials(states=(TrialState.RUNNING,))
    assert [(t.number, t.params) for t in running] == [(trial.number, trial.params)]
    trial.report(3.0, 0)  # the view holds the trial's own copy: its reports show at once
    assert study.get_trials(states=(TrialState.RUNNING,))[0].intermediate_values == {0: 3.0}
    told = study.tell(trial, 0.5)
    view.done(trial._trial_id, told)  # finished in the view without reading the store
    assert study.get_trials(states=(TrialState.RUNNING,)) == []
    assert study.get_trials(deepcopy=False)[-1].value == 0.5
    assert view.reads == reads


def test_other_drivers_trials_show_after_the_interval_and_requeues_at_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    study = _study(tmp_path)
    view = read_through(study, every=3600)
    n = len(study.get_trials())
    other = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}")
    other.tell(other.ask(DISTS), 1.0)
    assert len(study.get_trials()) == n  # another driver's trial: not within the interval
    view._at = -float("inf")  # the interval passed
    assert len(study.get_trials()) == n + 1
    study.enqueue_trial({"x": 0.5, "y": 0.1})  # a re-queue from this driver: at once
    trial = study.ask(DISTS)
    assert trial.params == {"x": 0.5, "y": 0.1}


def test_a_driver_proposes_and_prunes_as_on_optunas_own_storage(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two trials at a time, asked, reported and told in one interleaving, once on Optuna's
    storage and once through the view (which never takes a new snapshot): the same params,
    the same pruning decisions, trial by trial."""

    def drive(study: optuna.Study, view: StudyView | None) -> list[tuple[object, ...]]:
        out: list[tuple[object, ...]] = []
        live: list[optuna.Trial] = []
        for i in range(16):
            trial = study.ask(DISTS)
            if view is not None:
                view.running(trial._cached_frozen_trial)
            live.append(trial)
            if len(live) < 2:
                continue
            first = live.pop(0)
            value = 40 * (first.params["x"] - 0.3) ** 2 + i
            first.report(value, 0)
            pruned = first.should_prune()
            state = TrialState.PRUNED if pruned else TrialState.COMPLETE
            told = study.tell(first, None if pruned else value, state=state)
            if view is not None:
                view.done(first._trial_id, told)
            out.append((first.number, first.params, pruned))
        return out

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain = drive(_study(tmp_path / "a"), None)
    viewed_study = _study(tmp_path / "b")
    view = read_through(viewed_study, every=3600)
    viewed = drive(viewed_study, view)
    assert viewed == plain
    assert any(p for *_, p in plain) and not all(p for *_, p in plain)  # both decisions seen
    assert view.reads == 1
