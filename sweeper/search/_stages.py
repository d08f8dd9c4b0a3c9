"""Coarse to fine: the space a later stage searches, narrowed around the best of the stage
before it (with several objectives, around its Pareto front: non-dominated rank, never one
metric).

Numeric ranges shrink to what the top share of the earlier stage spanned (in log space where
the param is log), widened a little on each side and kept inside the definition's range.
Categorical params keep the choices seen in that top share. Optuna refuses a categorical
distribution whose choices change within a study (its storage checks every trial against the
first), so a narrowed categorical keeps its distribution and `NarrowedSampler` draws only from
the kept choices.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from sweeper.search._wrapped import WrappedSampler
from sweeper.store import pareto_layers

WIDEN = 0.1  # each side grows by this share of what the top trials spanned
MIN_SHARE = 0.05  # ... and by at least this share of the whole range (one top trial: a box)


def top_share(
    trials: Sequence[FrozenTrial], share: float, maximize: Sequence[bool]
) -> list[FrozenTrial]:
    """The best `share` of the complete trials (at least one), best first; `maximize`: whether
    each objective is. With several, best is by non-dominated rank among the feasible ones:
    the whole front at least, then the layers behind it, whole, each by the first objective."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None]
    want = max(1, math.ceil(share * len(done)))
    if len(maximize) > 1:
        top: list[FrozenTrial] = []
        for layer in pareto_layers(done, list(maximize)):
            top += layer
            if len(top) >= want:
                break
        return top
    sign = -1.0 if maximize[0] else 1.0
    done.sort(key=lambda t: (sign * float(t.values[0]), t.number))
    return done[:want]


def _span(
    d: FloatDistribution | IntDistribution, values: list[float]
) -> tuple[float, float] | None:
    """[low, high] around `values`, widened, inside the distribution's range."""
    f = math.log if d.log else float
    back = math.exp if d.log else float
    lo, hi = f(min(values)), f(max(values))
    full_lo, full_hi = f(d.low), f(d.high)
    margin = max(WIDEN * (hi - lo), MIN_SHARE * (full_hi - full_lo))
    low, high = back(max(full_lo, lo - margin)), back(min(full_hi, hi + margin))
    low, high = max(low, d.low), min(high, d.high)  # exp(log(x)) may miss x by an ulp
    step = getattr(d, "step", None)
    if step is not None:  # back on the distribution's grid, outwards
        low = d.low + math.floor((low - d.low) / step + 1e-9) * step
        high = d.low + math.ceil((high - d.low) / step - 1e-9) * step
        low, high = max(low, d.low), min(high, d.high)
    return (low, high) if low <= high else None


def narrow(
    dists: dict[str, BaseDistribution], top: Sequence[dict[str, Any]]
) -> tuple[dict[str, BaseDistribution], dict[str, list[Any]]]:
    """The space around the params in `top`: numeric distributions narrowed, and the choices
    each categorical keeps (only those that lost a choice)."""
    out: dict[str, BaseDistribution] = {}
    kept: dict[str, list[Any]] = {}
    for name, d in dists.items():
        values = [p[name] for p in top if name in p]
        out[name] = d
        if not values:
            continue
        if isinstance(d, CategoricalDistribution):
            choices = [c for c in d.choices if c in values]
            if choices and len(choices) < len(d.choices):
                kept[name] = choices
        elif isinstance(d, IntDistribution):
            span = _span(d, [float(v) for v in values])
            if span is not None:
                low, high = int(round(span[0])), int(round(span[1]))
                out[name] = IntDistribution(low, high, log=d.log, step=d.step)
        elif isinstance(d, FloatDistribution):
            span = _span(d, [float(v) for v in values])
            if span is not None:
                out[name] = FloatDistribution(span[0], span[1], log=d.log, step=d.step)
    return out, kept


def describe(dists: dict[str, BaseDistribution], kept: dict[str, list[Any]]) -> dict[str, Any]:
    """The space as plain data for the store and the user: `{low, high}` or the choices."""
    out: dict[str, Any] = {}
    for name, d in dists.items():
        if isinstance(d, CategoricalDistribution):
            out[name] = list(kept.get(name, d.choices))
        elif isinstance(d, (FloatDistribution, IntDistribution)):
            out[name] = {"low": d.low, "high": d.high}
    return out


def space_text(space: dict[str, Any]) -> str:
    """`describe`'s space in one line: `lr 0.001–0.01, batch_size [32, 64]`."""
    return ", ".join(
        f"{k} {v['low']:.3g}–{v['high']:.3g}" if isinstance(v, dict) else f"{k} {v}"
        for k, v in space.items()
    )


class NarrowedSampler(WrappedSampler):
    """The study's sampler, except that a narrowed categorical is drawn from its kept choices
    (uniformly, from a seeded generator): its distribution cannot change within a study."""

    def __init__(
        self, inner: optuna.samplers.BaseSampler, kept: dict[str, list[Any]], seed: int | None
    ) -> None:
        super().__init__(inner)
        self.kept = kept
        self._rng = random.Random(seed)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """The inner sampler's, less the narrowed categoricals."""
        space = self.inner.infer_relative_search_space(study, trial)
        return {k: v for k, v in space.items() if k not in self.kept}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """One of the kept choices for a narrowed categorical; else the inner sampler's."""
        if param_name in self.kept:
            return self._rng.choice(self.kept[param_name])
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def reseed_rng(self) -> None:
        """The inner sampler's, and this one's."""
        self.inner.reseed_rng()
        self._rng.seed()
