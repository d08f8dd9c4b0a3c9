"""Sampler and pruner from the definition, built from Optuna's own classes."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial

from sweeper.definition import Definition
from sweeper.store import attrs


def violations(constraints: list[Any], metrics: dict[str, float] | None) -> list[float]:
    """Each constraint's violation for a trial's last-epoch `metrics` (<= 0: kept)."""
    got = metrics or {}
    return [c.violation(got.get(c.metric)) for c in constraints]


class Feasibility:
    """Optuna's `constraints_func` for the definition's `constraints:`. Optuna calls it as a
    trial is told and stores the result as the trial's "constraints" system attribute, which
    its samplers, `best_trials` filters and optuna-dashboard read. The values are those the
    driver computed just before the tell (`given`), else computed from the trial's recorded
    last-epoch metrics."""

    def __init__(self, constraints: list[Any]) -> None:
        self.constraints = list(constraints)
        self.pending: dict[int, list[float]] = {}

    def given(self, trial_id: int, values: list[float]) -> None:
        """The violations of the trial about to be told."""
        self.pending[trial_id] = list(values)

    def __call__(self, trial: FrozenTrial) -> list[float]:
        values = self.pending.pop(trial._trial_id, None)
        if values is None:
            values = violations(self.constraints, trial.user_attrs.get(attrs.METRICS))
        return values


def feasibility_of(sampler: Any) -> Feasibility | None:
    """The Feasibility inside a (wrapped) study sampler, or None (no constraints)."""
    while sampler is not None:
        found = getattr(sampler, "_constraints_func", None)
        if isinstance(found, Feasibility):
            return found
        sampler = getattr(sampler, "inner", None)
    return None


def make_sampler(spec: Definition, parallel: bool) -> optuna.samplers.BaseSampler:
    """Optuna's sampler as the definition names it, seeded, over a window of recent trials;
    with `constraints:`, Optuna's own constraints mechanism (`Feasibility`)."""
    s = spec.sampler
    feasible = Feasibility(spec.constraints) if spec.constraints else None
    if s.type == "random":
        return optuna.samplers.RandomSampler(seed=s.seed)
    if s.type == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=s.seed, constraints_func=feasible)
    # constant liar: parallel asks see running trials as bad, so they spread out
    # (`window:` bounds what it reads: sweeper.search._window, applied with the study view)
    return optuna.samplers.TPESampler(
        seed=s.seed,
        n_startup_trials=s.startup_trials,
        multivariate=True,
        constant_liar=parallel,
        constraints_func=feasible,
    )


class PrimaryView(optuna.Study):
    """A multi-objective study as its pruner sees it: one direction, the first objective's,
    whose per-epoch values are the trial's intermediate values. Optuna's pruners are
    single-objective; sweeper's median pruner acts on the first objective (README)."""

    def __init__(self, study: optuna.Study, direction: str) -> None:
        self.__dict__.update(study.__dict__)
        self._primary = optuna.study.StudyDirection[direction.upper()]

    @property
    def direction(self) -> optuna.study.StudyDirection:
        """The first objective's direction."""
        return self._primary

    @property
    def directions(self) -> list[optuna.study.StudyDirection]:
        """The first objective's direction alone."""
        return [self._primary]


def should_prune(study: optuna.Study, trial: optuna.Trial, direction: str) -> bool:
    """The study's pruner on `trial`'s intermediate values; for several objectives, on the
    first (`direction`), which Optuna's own `Trial.should_prune` refuses."""
    if len(study.directions) == 1:
        return trial.should_prune()
    return study.pruner.prune(PrimaryView(study, direction), trial._get_latest_trial())


def make_pruner(spec: Definition) -> optuna.pruners.BasePruner:
    """Optuna's pruner as the definition names it (none: a pruner that never prunes)."""
    p = spec.pruner
    if p.type == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=p.startup_trials, n_warmup_steps=p.warmup_epochs
        )
    if p.type == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=max(1, p.warmup_epochs), max_resource=spec.budget.epochs
        )
    return optuna.pruners.NopPruner()
