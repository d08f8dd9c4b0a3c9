"""The study store: Optuna RDB storage (SQLite, PostgreSQL) plus sweeper's own records."""

from sweeper.store import _attrs as attrs
from sweeper.store._bulk import record_heartbeats, record_reports, set_trial_attrs
from sweeper.store._front import KNEE, Front, hypervolume, pareto_layers, study_front
from sweeper.store._place import Store
from sweeper.store._ranking import (
    Confirmed,
    Ranking,
    config_key,
    is_confirmation,
    needs_ranking,
    rank,
    retried,
    stage_of,
    study_ranking,
)
from sweeper.store._retry import first_line, retrying
from sweeper.store._storage import (
    GRACE_S,
    HEARTBEAT_S,
    artifact_dir,
    drop_trial_attrs,
    last_trials,
    load_study,
    open_storage,
    redact,
    sqlite_path,
    state_counts,
    study_names,
    trials_in_states,
    user_attr_values,
    weights_holders,
)

__all__ = [
    "Confirmed",
    "Ranking",
    "Store",
    "config_key",
    "is_confirmation",
    "needs_ranking",
    "KNEE",
    "Front",
    "hypervolume",
    "pareto_layers",
    "study_front",
    "rank",
    "retried",
    "stage_of",
    "study_ranking",
    "GRACE_S",
    "HEARTBEAT_S",
    "artifact_dir",
    "drop_trial_attrs",
    "first_line",
    "record_heartbeats",
    "record_reports",
    "retrying",
    "set_trial_attrs",
    "weights_holders",
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
