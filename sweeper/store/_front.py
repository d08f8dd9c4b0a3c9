"""The Pareto front of a study with several objectives, and the one member a user picks.

The front is Optuna's own (`Study.best_trials`: the non-dominated completed trials, among the
feasible ones when the study has constraints); in a staged study, the last stage's front, as
one objective's best is the last stage's. sweeper adds the picking: the member best on
one named metric, or the knee, the member nearest the ideal point once each objective is
scaled to [0, 1] over the front; and the front's hypervolume, on the same scaling over every
feasible completed trial, for `sweeper status`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from sweeper.errors import SweeperError
from sweeper.store._ranking import (
    distinct_configs,
    feasible,
    is_confirmation,
    needs_ranking,
    stage_of,
)

KNEE = "knee"


@dataclass
class Front:
    """The front's members (best first on the first objective), the objectives' names and
    whether each is maximized."""

    members: list[FrozenTrial]
    metrics: list[str]
    maximize: list[bool]

    def values(self, trial: FrozenTrial) -> dict[str, float]:
        """The trial's value of each objective, by name."""
        return {m: float(v) for m, v in zip(self.metrics, trial.values or [], strict=False)}

    def pick(self, how: str | None = None) -> FrozenTrial:
        """The member best on objective `how`, the knee for "knee", or the best on the first
        objective for None."""
        if not self.members:
            raise SweeperError(
                "the study has no feasible completed trial yet: no front to pick from"
            )
        if how is None:
            return self.members[0]
        if how == KNEE:
            return self._knee()
        if how in self.metrics:
            i = self.metrics.index(how)
            sign = -1.0 if self.maximize[i] else 1.0
            return min(self.members, key=lambda t: (sign * float(t.values[i]), t.number))
        raise SweeperError(
            f"pick {how!r}: not one of the study's objectives ({', '.join(self.metrics)}); "
            f"pick one of them, or {KNEE!r}"
        )

    def _knee(self) -> FrozenTrial:
        points = [list(t.values) for t in self.members]
        scaled = _scaled(points, self.maximize, points)
        best = min(range(len(self.members)), key=lambda i: (math.hypot(*scaled[i]), i))
        return self.members[best]


def study_front(study: Any, trials: Sequence[FrozenTrial] | None = None) -> Front:
    """The front of a study (several objectives; with one, its best trial alone). `trials`:
    every trial of the study, where the caller has read them already."""
    metrics = list(study.metric_names or [f"value{i}" for i in range(len(study.directions))])
    maximize = [d.name == "MAXIMIZE" for d in study.directions]
    if len(maximize) == 1:
        try:
            members = [study.best_trial]
        except ValueError:
            members = []
    elif needs_ranking(study._storage.get_study_system_attrs(study._study_id)):
        # staged or confirmed: the last stage's front, as `rank` ranks one objective (an
        # earlier stage trained fewer epochs; a confirmation run is a re-run)
        if trials is None:
            trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
        search = [t for t in trials if not is_confirmation(t)]
        last = max((stage_of(t) for t in search), default=1)
        members = pareto_front([t for t in search if stage_of(t) == last], maximize)
    else:
        members = list(study.best_trials)
    sign = -1.0 if maximize[0] else 1.0
    members.sort(key=lambda t: (sign * float(t.values[0]), t.number))
    return Front(members, metrics, maximize)


def pareto_layers(trials: list[FrozenTrial], maximize: list[bool]) -> Iterator[list[FrozenTrial]]:
    """The feasible completed `trials` in non-dominated layers, made as they are asked for:
    the front first, then the front of what is left, and so on; each layer best first on the
    first objective."""
    signs = [-1.0 if up else 1.0 for up in maximize]
    left = [
        (t, [s * float(v) for s, v in zip(signs, t.values, strict=True)])
        for t in trials
        if t.state == TrialState.COMPLETE and t.values is not None and feasible(t)
    ]
    while left:
        layer = [(t, v) for t, v in left if not any(_dominates(w, v) for _, w in left)]
        layer.sort(key=lambda tv: (tv[1][0], tv[0].number))
        yield [t for t, _ in layer]
        taken = {id(t) for t, _ in layer}
        left = [(t, v) for t, v in left if id(t) not in taken]


def pareto_front(trials: list[FrozenTrial], maximize: list[bool]) -> list[FrozenTrial]:
    """The non-dominated feasible completed `trials`, best first on the first objective."""
    return next(pareto_layers(trials, maximize), [])


def front_spread(trials: list[FrozenTrial], maximize: list[bool], k: int) -> list[FrozenTrial]:
    """`k` distinct configurations of the front of `trials`, spread along it: all where it
    has no more; else evenly spaced by the first objective, both ends included (one: the
    first objective's best)."""
    front = distinct_configs(pareto_front(trials, maximize))
    if len(front) <= k:
        return front
    if k == 1:
        return front[:1]
    return [front[round(i * (len(front) - 1) / (k - 1))] for i in range(k)]


def _dominates(a: list[float], b: list[float]) -> bool:
    """Whether `a` is no worse than `b` everywhere and better somewhere (both minimized)."""
    return a != b and all(x <= y for x, y in zip(a, b, strict=True))


def hypervolume(study: Any, front: Front) -> float | None:
    """The front's hypervolume with each objective scaled to [0, 1] over every feasible
    completed trial (0 the best value seen, 1 the worst) and the reference point at 1.1 in
    each: between 0 and 1.1^k, larger is better. None without a completed trial."""
    if not front.members:
        return None
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    seen = [
        list(t.values)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.values is not None and feasible(t)
    ]
    scaled = _scaled([list(t.values) for t in front.members], front.maximize, seen)
    points = np.asarray(scaled, dtype=float)
    return float(compute_hypervolume(points, np.full(points.shape[1], 1.1)))


def _scaled(
    points: list[list[float]], maximize: list[bool], over: list[list[float]]
) -> list[list[float]]:
    """`points` as losses in [0, 1] per objective, scaled over the value lists `over`: 0 is
    the best value there, 1 the worst."""
    rows = over or points
    signs = [-1.0 if up else 1.0 for up in maximize]
    lows = [min(s * r[i] for r in rows) for i, s in enumerate(signs)]
    highs = [max(s * r[i] for r in rows) for i, s in enumerate(signs)]
    return [
        [
            (s * p[i] - lows[i]) / (highs[i] - lows[i]) if highs[i] > lows[i] else 0.0
            for i, s in enumerate(signs)
        ]
        for p in points
    ]
