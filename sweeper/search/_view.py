"""The study as the driver's sampler and pruner read it: one snapshot, not a query per call.

Optuna's cached storage re-reads every running trial from the database on each call that
lists trials. The pruner lists them at every epoch of every trial, TPE with constant liar at
every ask, so with 32 trials running each call rebuilds 32 trials from SQL: at 32 slots of 0.5 s
epochs that was most of the driver's time, and slots waited on it (BENCHMARKS §9). Here the
sampler and the pruner see one snapshot of the study, taken again when this driver tells a
trial and at most every `every` seconds otherwise (for other drivers' trials), with this
driver's own running trials kept exact (added as they are asked), so parallel asks still see
each other at once.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Container
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from sweeper.search._window import Window


class StudyView:
    def __init__(self, study: optuna.Study, every: float = 0.5) -> None:
        self._study = study
        self._every = every
        self._at = -float("inf")
        self._snapshot: list[FrozenTrial] = []
        self._own: dict[int, FrozenTrial] = {}
        self._merged: list[FrozenTrial] | None = None
        self.reads = 0  # snapshots taken (for the benchmarks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def running(self, trial: FrozenTrial) -> None:
        """One of this driver's trials was asked: the sampler sees it at once."""
        self._own[trial._trial_id] = trial
        self._merged = None

    def done(self, trial_id: int) -> None:
        """It was told: the next read takes a new snapshot, so the sampler and the pruner see
        it finished exactly when Optuna itself would (with one driver, the sampler proposes
        what it would without the view)."""
        if self._own.pop(trial_id, None) is not None:
            self._merged = None
            self._at = -float("inf")

    def _trials(self) -> list[FrozenTrial]:
        now = time.monotonic()
        if now - self._at >= self._every:
            self._snapshot = self._study._storage.get_all_trials(
                self._study._study_id, deepcopy=False
            )
            self._at, self._merged = now, None
            self.reads += 1
        if self._merged is None:
            mine = self._own
            merged = [t for t in self._snapshot if t._trial_id not in mine]
            if mine:
                merged = sorted([*merged, *mine.values()], key=lambda t: t.number)
            self._merged = merged
        return self._merged

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        trials = self._trials()
        if states is not None:
            trials = [t for t in trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else list(trials)

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return self._get_trials(deepcopy, states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


class ViewSampler(optuna.samplers.BaseSampler):
    """The study's sampler, choosing from the view (or a window of it: `sampler: {window: N}`);
    it learns of finished trials as before."""

    def __init__(
        self, inner: optuna.samplers.BaseSampler, view: StudyView, window: int | None = None
    ) -> None:
        self.inner = inner
        self.view: Any = view if window is None else Window(view, window)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(self.view, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.inner.sample_relative(self.view, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self.inner.sample_independent(
            self.view,
            trial,
            param_name,
            param_distribution,
        )

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Any,
    ) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


class ViewPruner(optuna.pruners.BasePruner):
    """A pruner that compares with other trials (median, percentile), reading the view."""

    def __init__(self, inner: optuna.pruners.BasePruner, view: StudyView) -> None:
        self.inner = inner
        self.view = view

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self.inner.prune(self.view, trial)  # type: ignore[arg-type]


def read_through(study: optuna.Study, every: float = 0.5, window: int | None = None) -> StudyView:
    """Make `study`'s sampler and its median/percentile pruner read one shared view (other
    pruners, such as Hyperband's brackets, keep reading the study itself); with `window`, the
    sampler sees only that window of it."""
    view = StudyView(study, every)
    study.sampler = ViewSampler(study.sampler, view, window)
    if isinstance(study.pruner, optuna.pruners.PercentilePruner):  # MedianPruner is one
        study.pruner = ViewPruner(study.pruner, view)
    return view
