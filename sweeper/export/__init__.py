"""Getting results out: best configs (JSON, YAML, Python, env) and the trials table."""

from sweeper.export._best import (
    DEFAULT_STORAGE,
    FORMATS,
    BestConfig,
    best_config,
    configs_table,
    front_json,
    render,
    top_configs,
)
from sweeper.export._status import StudyStatus, study_status
from sweeper.export._table import export_trials, trials_table
from sweeper.export._weights import best_weights, load_best_model, write_weights

__all__ = [
    "DEFAULT_STORAGE",
    "FORMATS",
    "BestConfig",
    "StudyStatus",
    "best_config",
    "best_weights",
    "export_trials",
    "configs_table",
    "front_json",
    "load_best_model",
    "render",
    "study_status",
    "top_configs",
    "trials_table",
    "write_weights",
]
