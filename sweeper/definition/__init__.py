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
    Definition,
    FixedParam,
    FloatParam,
    IntParam,
    SearchSpace,
)

__all__ = [
    "INIT_SCHEMES",
    "CategoricalParam",
    "Definition",
    "FixedParam",
    "FloatParam",
    "IntParam",
    "LoadedDefinition",
    "SearchSpace",
    "fingerprint",
    "load_definition",
    "parse_definition",
]
