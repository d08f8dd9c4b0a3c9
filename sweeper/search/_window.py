"""TPE on a bounded window of trials: what keeps an ask cheap in a study of many thousands.

Optuna's TPE fits its two densities on every finished trial, so that part of an ask grows with
the study (BENCHMARKS §4: on PostgreSQL a warm ask took 56 ms at 1,000 trials, 143 ms at
10,000, 121 ms with a window of 1,000; the rest is Optuna passing over the whole trial list). With
`sampler: {window: N}` the driver's sampler sees the N most recent finished trials, plus the
best N/10 of the older ones (so what was learnt early is not forgotten), plus every running
trial (constant liar): `WindowSampler` hands any sampler the study seen through `Window`.
Everything else (the pruner, `best`, the store) still sees the whole study.
"""

from __future__ import annotations

import heapq
from collections.abc import Container, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from sweeper.search._wrapped import WrappedSampler


def recent(trials: Sequence[FrozenTrial], size: int, maximize: bool) -> list[FrozenTrial]:
    """The `size` most recent finished trials, the best `size // 10` older complete ones, and
    every unfinished trial, in their original order."""
    finished = [t for t in trials if t.state.is_finished()]
    if len(finished) <= size:
        return list(trials)
    cut = heapq.nlargest(size, (t.number for t in finished))[-1]
    older = [t for t in finished if t.number < cut and t.state == TrialState.COMPLETE]
    key = (lambda t: t.value) if maximize else (lambda t: -t.value)
    best = {t.number for t in heapq.nlargest(size // 10, older, key=key)}
    return [t for t in trials if not t.state.is_finished() or t.number >= cut or t.number in best]


class Window:
    """A study seen through `recent`: what the sampler reads; the rest is the study itself."""

    def __init__(self, study: Any, size: int) -> None:
        self._study = study
        self._size = size
        self._maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        return recent(trials, self._size, self._maximize)

    def get_trials(
        self, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        """The study's most recent finished trials (and the best), up to the window's size."""
        return recent(self._study.get_trials(deepcopy, states), self._size, self._maximize)

    @property
    def trials(self) -> list[FrozenTrial]:
        """`get_trials()`, as Optuna's `Study.trials`."""
        return self.get_trials()


class WindowSampler(WrappedSampler):
    """The study's sampler, choosing from a `Window` of the study; it learns of finished
    trials from the whole study as before."""

    def __init__(self, inner: optuna.samplers.BaseSampler, size: int) -> None:
        super().__init__(inner)
        self.size = size

    def _window(self, study: optuna.Study) -> Any:
        return Window(study, self.size)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """The inner sampler's, on the window."""
        return self.inner.infer_relative_search_space(self._window(study), trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """The inner sampler's, on the window."""
        return self.inner.sample_relative(self._window(study), trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """The inner sampler's, on the window."""
        window = self._window(study)
        return self.inner.sample_independent(window, trial, param_name, param_distribution)
