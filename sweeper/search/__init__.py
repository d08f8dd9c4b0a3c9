"""Search: the definition's space, sampler and pruner in Optuna's terms."""

from sweeper.search._algorithms import (
    Feasibility,
    feasibility_of,
    make_pruner,
    make_sampler,
    should_prune,
    violations,
)
from sweeper.search._space import (
    cap_lr,
    distributions,
    fixed_values,
    init_schemes,
    reference_params,
)
from sweeper.search._stages import NarrowedSampler, describe, narrow, space_text, top_share
from sweeper.search._view import read_ahead, read_through

__all__ = [
    "NarrowedSampler",
    "cap_lr",
    "describe",
    "distributions",
    "fixed_values",
    "init_schemes",
    "make_pruner",
    "make_sampler",
    "should_prune",
    "Feasibility",
    "feasibility_of",
    "violations",
    "narrow",
    "read_ahead",
    "read_through",
    "reference_params",
    "space_text",
    "top_share",
]
