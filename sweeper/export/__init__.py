"""Getting results out: best configs (JSON, YAML, Python, env) and the trials table."""

from sweeper.export._best import (
    DEFAULT_STORAGE,
    FORMATS,
    BestConfig,
    best_config,
    render,
    top_configs,
)
from sweeper.export._table import export_trials, trials_table

__all__ = [
    "DEFAULT_STORAGE",
    "FORMATS",
    "BestConfig",
    "best_config",
    "export_trials",
    "render",
    "top_configs",
    "trials_table",
]
