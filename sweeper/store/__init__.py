"""The study store: Optuna RDB storage (SQLite, PostgreSQL) plus sweeper's own records."""

from sweeper.store import _attrs as attrs
from sweeper.store._storage import (
    artifact_dir,
    last_trials,
    load_study,
    open_storage,
    redact,
    sqlite_path,
    state_counts,
    study_names,
    trials_in_states,
    user_attr_values,
)

__all__ = [
    "artifact_dir",
    "attrs",
    "last_trials",
    "load_study",
    "open_storage",
    "redact",
    "sqlite_path",
    "state_counts",
    "study_names",
    "trials_in_states",
    "user_attr_values",
]
