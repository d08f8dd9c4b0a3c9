"""The study definition: YAML in, a validated, typed spec out (no torch, no ray)."""

from sweeper.definition._load import (
    LoadedDefinition,
    fingerprint,
    load_definition,
    parse_definition,
)
from sweeper.definition._schema import (
    INIT_SCHEMES,
    CategoricalParam,
    Confirm,
    Definition,
    FixedParam,
    FloatParam,
    IntParam,
    SearchSpace,
    Stage,
)

__all__ = [
    "INIT_SCHEMES",
    "CategoricalParam",
    "Confirm",
    "Definition",
    "FixedParam",
    "FloatParam",
    "IntParam",
    "LoadedDefinition",
    "SearchSpace",
    "Stage",
    "fingerprint",
    "load_definition",
    "parse_definition",
]
