"""The definition's search space as Optuna distributions, fixed values and a reference point."""

from __future__ import annotations

import math
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from sweeper.definition import CategoricalParam, FixedParam, FloatParam, IntParam, SearchSpace


def distributions(space: SearchSpace) -> dict[str, BaseDistribution]:
    """Every searched parameter as an Optuna distribution (fixed ones are left out)."""
    out: dict[str, BaseDistribution] = {}
    for name, p in space.params().items():
        if isinstance(p, FloatParam):
            out[name] = FloatDistribution(p.low, p.high, log=p.log, step=p.step)
        elif isinstance(p, IntParam):
            out[name] = IntDistribution(p.low, p.high, log=p.log, step=p.step)
        elif isinstance(p, CategoricalParam):
            out[name] = CategoricalDistribution(p.choices)
    return out


def fixed_values(space: SearchSpace) -> dict[str, Any]:
    """The definition's fixed params, by name."""
    return {n: p.value for n, p in space.params().items() if isinstance(p, FixedParam)}


def reference_params(space: SearchSpace) -> dict[str, Any]:
    """A middle-of-the-range configuration for the study gate (dropout is turned off by the
    probes that need it off): geometric middle of log ranges, middle of linear ones, the first
    categorical choice. The init is 'none', the model as build_model made it, unless the
    space fixes another scheme: the gate judges the model the user built."""
    out: dict[str, Any] = {}
    for name, p in space.params().items():
        if isinstance(p, FixedParam):
            out[name] = p.value
        elif isinstance(p, CategoricalParam):
            out[name] = "none" if name == "init" else p.choices[0]
        elif isinstance(p, (FloatParam, IntParam)):
            mid = math.sqrt(p.low * p.high) if p.log else (p.low + p.high) / 2
            out[name] = int(round(mid)) if isinstance(p, IntParam) else float(mid)
    if isinstance(space.dropout, FloatParam):
        out["dropout"] = space.dropout.low
    return out


def cap_lr(space: SearchSpace, max_lr: float) -> SearchSpace:
    """The same space with lr's upper end lowered to max_lr (never below its low end)."""
    if not isinstance(space.lr, FloatParam) or space.lr.high <= max_lr:
        return space
    lr = space.lr.model_copy(update={"high": max(max_lr, space.lr.low)})
    return space.model_copy(update={"lr": lr})


def init_schemes(space: SearchSpace) -> list[str]:
    """The init schemes the search may use."""
    p = space.init
    if isinstance(p, CategoricalParam):
        return [str(c) for c in p.choices]
    return [str(p.value)] if isinstance(p, FixedParam) else []
