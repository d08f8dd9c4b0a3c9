"""Which trial is the best, once a study has stages and confirmations.

A staged study's best comes from its last stage (earlier stages trained shorter: their values
do not compare); a confirmed study's best is the configuration whose new seeds gave the best
mean, not the luckiest single run. Everything that names a best (the run's summary, `sweeper
best`, `sweeper status`, `load_best_model`, the report) reads it from here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from sweeper.store import _attrs as attrs


@dataclass(frozen=True)
class Confirmed:
    """A configuration trained again with new seeds: the trial it confirms (its search run)
    and that run's value of each objective, each completed new run's values, their trial
    numbers (the seed of each), and how many runs ended without a value (stopped by a probe,
    failed)."""

    source: int
    search_values: list[float]
    runs: list[list[float]]
    trials: list[int]
    unfinished: int = 0

    @property
    def search_value(self) -> float:
        """The search run's value of the first objective."""
        return self.search_values[0]

    @property
    def values(self) -> list[float]:
        """The new runs' values of the first objective."""
        return [r[0] for r in self.runs]

    @property
    def mean(self) -> float | None:
        """The mean of the new seeds' values (None before one completes)."""
        return _mean_std(self.values)[0]

    @property
    def std(self) -> float | None:
        """The sample standard deviation of the new seeds' values (0 for a single run)."""
        return _mean_std(self.values)[1]

    def objectives(self, metrics: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Per objective (several objectives), by name: the new runs' mean, std and values
        and the search run's value."""
        out: dict[str, dict[str, Any]] = {}
        for i, m in enumerate(metrics):
            values = [r[i] for r in self.runs]
            mean, std = _mean_std(values)
            out[m] = {
                "mean": mean,
                "std": std,
                "values": values,
                "search_value": self.search_values[i],
            }
        return out

    def to_dict(self, metrics: Sequence[str] | None = None) -> dict[str, Any]:
        """The `confirmed` object of `sweeper best --format json`; with several objectives'
        `metrics`, each one's too (under "objectives")."""
        out: dict[str, Any] = {
            "mean": self.mean,
            "std": self.std,
            "values": list(self.values),
            "trials": list(self.trials),
            "search_value": self.search_value,
            "unfinished": self.unfinished,
        }
        if metrics is not None and len(metrics) > 1:
            out["objectives"] = self.objectives(metrics)
        return out


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (0 for one value; None for none)."""
    if not values:
        return None, None
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def stage_of(trial: FrozenTrial) -> int:
    """The stage a trial ran in (1 for a study without stages)."""
    return int(trial.user_attrs.get(attrs.STAGE, 1))


def is_confirmation(trial: FrozenTrial) -> bool:
    """Whether the trial is a confirmation run (a new seed of an earlier trial's params)."""
    return attrs.CONFIRMS in trial.user_attrs


def retried(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of trials that were re-queued (a later trial re-runs them)."""
    return {int(t.user_attrs[attrs.RETRY_OF]) for t in trials if attrs.RETRY_OF in t.user_attrs}


def config_key(trial: FrozenTrial) -> str:
    """The trial's params as one comparable key (two trials with the same key: one config)."""
    return repr(sorted(trial.params.items(), key=lambda kv: kv[0]))


def distinct_configs(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The first trial of each configuration in `trials`, in their order."""
    seen: set[str] = set()
    out = []
    for t in trials:
        key = config_key(t)
        if key not in seen:
            seen.add(key)
            out.append(t)
    return out


@dataclass
class Ranking:
    """The study's complete search trials of its last stage, best first, and the confirmations
    of the best of them."""

    maximize: bool
    last_stage: int
    candidates: list[FrozenTrial]  # complete, of the last stage, not confirmations; best first
    confirmed: dict[int, Confirmed]  # by the number of the trial confirmed
    trials: Sequence[FrozenTrial] = ()  # every trial it was ranked from (one read of the study)

    def ordered(self) -> list[FrozenTrial]:
        """Confirmed configurations by their mean first, then the rest by their value."""
        means = {n: c.mean for n, c in self.confirmed.items() if c.mean is not None}
        sign = -1.0 if self.maximize else 1.0
        first = sorted(
            (t for t in self.candidates if t.number in means),
            key=lambda t: (sign * means[t.number], t.number),
        )
        return first + [t for t in self.candidates if t.number not in means]

    def best(self) -> FrozenTrial | None:
        """The best trial: of the configuration with the best confirmed mean, if any."""
        ordered = self.ordered()
        return ordered[0] if ordered else None

    def top_distinct(self, k: int) -> list[FrozenTrial]:
        """The `k` best distinct configurations by their search value, one trial each."""
        return distinct_configs(self.candidates)[:k]


def rank(trials: Sequence[FrozenTrial], maximize: bool) -> Ranking:
    """Rank a study's trials (see `Ranking`)."""
    search = [t for t in trials if not is_confirmation(t)]
    last = max((stage_of(t) for t in search), default=1)
    sign = -1.0 if maximize else 1.0
    done = [
        t
        for t in search
        if t.state == TrialState.COMPLETE
        and stage_of(t) == last
        and t.values is not None
        and feasible(t)
    ]
    done.sort(key=lambda t: (sign * float(t.values[0]), t.number))
    by_number = {t.number: t for t in done}
    again = retried(trials)
    confirmed: dict[int, Confirmed] = {}
    runs: dict[int, list[FrozenTrial]] = {}
    for t in trials:
        if is_confirmation(t) and t.number not in again:
            runs.setdefault(int(t.user_attrs[attrs.CONFIRMS]), []).append(t)
    for source, group in runs.items():
        if source not in by_number:
            continue
        done_runs = [t for t in group if t.state == TrialState.COMPLETE and t.values is not None]
        confirmed[source] = Confirmed(
            source=source,
            search_values=[float(v) for v in by_number[source].values],
            runs=[[float(v) for v in t.values] for t in done_runs],
            trials=[t.number for t in done_runs],
            unfinished=sum(t.state in (TrialState.PRUNED, TrialState.FAIL) for t in group),
        )
    return Ranking(maximize, last, done, confirmed, trials)


def feasible(trial: FrozenTrial) -> bool:
    """Whether the trial keeps the study's constraints (Optuna's "constraints" attribute:
    every value <= 0); a study without constraints has every trial feasible."""
    values = trial.system_attrs.get(attrs.CONSTRAINTS)
    return values is None or all(float(v) <= 0.0 for v in values)


def study_ranking(study: Any) -> Ranking:
    """Rank the trials of an Optuna study (reads every trial once); with several objectives,
    by the first (the front itself is `sweeper.store.front`)."""
    trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
    return rank(trials, study.directions[0].name == "MAXIMIZE")


def needs_ranking(system_attrs: dict[str, Any]) -> bool:
    """Whether a study's best is not simply Optuna's best trial: it has stages or
    confirmations (read from its system attributes, without reading its trials)."""
    return bool(system_attrs.get(attrs.STAGES)) or bool(system_attrs.get(attrs.CONFIRM))
