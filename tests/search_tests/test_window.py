"""TPE on a bounded window: it fits on the recent trials plus the best older ones, through the
driver's study view, as the definition's `sampler: {window: N}` asks."""

from __future__ import annotations

import random

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from sweeper.search._view import read_through
from sweeper.search._window import WindowSampler, recent

DISTS = {"x": FloatDistribution(0.0, 1.0)}


def _study(n: int, window: int | None) -> optuna.Study:
    sampler = optuna.samplers.TPESampler(
        seed=0, n_startup_trials=5, multivariate=True, constant_liar=True
    )
    study = optuna.create_study(sampler=sampler, direction="minimize")
    rng = random.Random(0)
    study.add_trials(
        [
            create_trial(
                params={"x": (x := rng.random())}, distributions=DISTS, value=(x - 0.3) ** 2
            )
            for _ in range(n)
        ]
    )
    read_through(study, every=0.0, window=window)  # as the driver does
    return study


def test_recent_keeps_the_newest_the_best_older_and_every_running_trial() -> None:
    study = _study(100, None)
    running = study.ask(DISTS)
    trials = study.get_trials(deepcopy=False)
    kept = recent(trials, 20, maximize=False)
    numbers = [t.number for t in kept]
    assert numbers == sorted(numbers)  # the study's order
    newest = [t.number for t in kept if t.number >= 80 and t.state.is_finished()]
    assert newest == list(range(80, 100))
    older = [t for t in kept if t.number < 80]
    best_older = sorted((t for t in trials[:80]), key=lambda t: t.value)[:2]
    assert {t.number for t in older} == {t.number for t in best_older}
    assert running.number in numbers
    assert recent(trials[:10], 20, maximize=False) == trials[:10]


def test_windowed_tpe_fits_on_the_window_only(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    build = optuna.samplers.TPESampler._build_parzen_estimator

    def spy(self, study, search_space, trials, handle_below):  # type: ignore[no-untyped-def]
        seen.append(len(trials))
        return build(self, study, search_space, trials, handle_below)

    monkeypatch.setattr(optuna.samplers.TPESampler, "_build_parzen_estimator", spy)
    for window, expected in ((None, 300), (50, 55)):
        seen.clear()
        study = _study(300, window)
        trial = study.ask(DISTS)
        study.tell(trial, 0.5)
        assert sum(seen[:2]) == expected  # below + above: every trial, or the window (+ best)


def test_definition_window_reaches_the_drivers_sampler_view() -> None:
    from sweeper.definition import parse_definition

    base = "name: x\ntask: m:f\nbudget: {trials: 1, epochs: 5}\n"
    search = "search: {lr: {type: float, low: 0.001, high: 0.1}, batch_size: 8, dropout: 0.0}\n"
    spec = parse_definition(base + search + "sampler: {type: tpe, window: 500}\n")
    assert spec.sampler.window == 500
    study = optuna.create_study()
    read_through(study, window=spec.sampler.window)
    assert isinstance(study.sampler, WindowSampler) and study.sampler.size == 500
