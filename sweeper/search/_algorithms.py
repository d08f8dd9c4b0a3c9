"""Sampler and pruner from the definition, built from Optuna's own classes."""

from __future__ import annotations

import optuna

from sweeper.definition import Definition


def make_sampler(spec: Definition, parallel: bool) -> optuna.samplers.BaseSampler:
    """Optuna's sampler as the definition names it, seeded, over a window of recent trials."""
    s = spec.sampler
    if s.type == "random":
        return optuna.samplers.RandomSampler(seed=s.seed)
    # constant liar: parallel asks see running trials as bad, so they spread out
    # (`window:` bounds what it reads: sweeper.search._window, applied with the study view)
    return optuna.samplers.TPESampler(
        seed=s.seed, n_startup_trials=s.startup_trials, multivariate=True, constant_liar=parallel
    )


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
