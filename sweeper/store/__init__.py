"""The study store: Optuna RDB storage (SQLite, PostgreSQL) plus sweeper's own records."""

from sweeper.store import _attrs as attrs
from sweeper.store._storage import (
    artifact_dir,
    load_study,
    open_storage,
    redact,
    sqlite_path,
    study_names,
)

__all__ = [
    "artifact_dir",
    "attrs",
    "load_study",
    "open_storage",
    "redact",
    "sqlite_path",
    "study_names",
]
