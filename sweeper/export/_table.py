"""Every trial of a study as one table (CSV or Parquet), for analysis in pandas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sweeper.errors import SweeperError


def trials_table(name: str, storage: str) -> Any:
    """A pandas DataFrame: one row per trial with its state, value, duration, params (one
    column each, `param_` + name), probe verdict and summary, and why it stopped or failed;
    with several objectives, `value_` + each objective's name, and `feasible` with
    constraints."""
    import pandas as pd

    from sweeper.store import attrs, load_study
    from sweeper.store._ranking import feasible

    study = load_study(storage, name)
    fixed = study._storage.get_study_system_attrs(study._study_id).get(attrs.FIXED) or {}
    names = list(study.metric_names or []) if len(study.directions) > 1 else []
    rows = []
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs
        duration = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        row: dict[str, Any] = {
            "number": t.number,
            "state": t.state.name,
            "value": t.values[0] if t.values else None,
            "duration_s": duration,
            "epochs_reported": len(t.intermediate_values),
        }
        row.update({f"param_{k}": v for k, v in {**fixed, **t.params}.items()})
        row.update({f"metric_{k}": v for k, v in (ua.get(attrs.METRICS) or {}).items()})
        for metric, v in zip(names, t.values or [], strict=False):  # several objectives
            row[f"value_{metric}"] = v
        if attrs.CONSTRAINTS in t.system_attrs:  # Optuna's constraints: kept when all <= 0
            row["feasible"] = feasible(t)
        row.update(
            probe_verdict=ua.get(attrs.VERDICT),
            probes=ua.get(attrs.PROBES),
            stopped=ua.get(attrs.STOPPED),
            error=ua.get(attrs.ERROR),
            seconds_saved=ua.get(attrs.SECONDS_SAVED),
            retry_of=ua.get(attrs.RETRY_OF),
            device=(ua.get(attrs.WORKER) or {}).get("device"),
        )
        rows.append(row)
    return pd.DataFrame(rows)


def export_trials(name: str, storage: str, out: Path) -> int:
    """Write the trials table to `out` (.csv or .parquet); returns the number of rows."""
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise SweeperError(f"--out must end in .csv or .parquet, got {out.name!r}")
    table = trials_table(name, storage)
    if suffix == ".csv":
        table.to_csv(out, index=False)
    else:
        try:
            import pyarrow  # noqa: F401
        except ModuleNotFoundError:
            raise SweeperError(
                "writing Parquet needs pyarrow: pip install 'sweeper[parquet]', or use .csv"
            ) from None
        table.to_parquet(out, index=False)
    return len(table)
