"""What sweeper keeps beside Optuna's own records, under `sweeper:` keys of the study/trials."""

from __future__ import annotations

import json
from typing import Any

import optuna

DEFINITION = "sweeper:definition"
FINGERPRINT = "sweeper:fingerprint"
FIXED = "sweeper:fixed_params"
GATE = "sweeper:gate"
LR_CAP = "sweeper:lr_cap"
JOBS = "sweeper:jobs"  # Ray jobs `sweeper submit` started for this study
CHECKPOINT_STORE = "sweeper:checkpoint_store"  # where the study's checkpoints and weights live
STAGES = "sweeper:stages"  # a staged study's stages: [{trials, epochs, narrow}, ...]
CONFIRM = "sweeper:confirm"  # {top, seeds, done}: the confirmation of the best configurations
DIAGNOSIS = "sweeper:diagnosis"  # the bias/variance verdict on the best, when the run ended
# per trial (user attrs, so optuna-dashboard shows them)
FINDINGS = "sweeper:findings"
VERDICT = "sweeper:verdict"  # worst verdict of the trial's probes
PROBES = "sweeper:probes"  # the trial's probe results as one readable line
STOPPED = "sweeper:stopped"
BY_PRUNER = "pruned by the pruner"  # how STOPPED starts when the pruner, not a probe, stopped it
METRICS = "sweeper:metrics"  # every metric of the trial's last reported epoch
# Optuna's own trial system attribute: each constraint's violation (<= 0 kept), read by its
# samplers, `best_trials` and optuna-dashboard
CONSTRAINTS = "constraints"
ERROR = "sweeper:error"
WORKER = "sweeper:worker"  # where the trial ran: device, Ray node, pid, torch version
DRIVER = "sweeper:driver"  # trial system attr: token of the driver that owns it
PROBE_SECONDS = "sweeper:probe_seconds"
SECONDS_SAVED = "sweeper:seconds_saved"  # trial-seconds a probe's early stop saved
REASON = "sweeper:reason"  # why a failed trial failed, when sweeper can name it: hang, crash
CRASHED = "sweeper:crashed"  # on a re-run: how the run before it crashed (a second = crash)
RETRY_OF = "sweeper:retry_of"
RETRIES = "sweeper:retries"
CHECKPOINTS = "sweeper:checkpoints"  # the running trial's last checkpoints, newest first
RESUME = "sweeper:resume"  # on a re-queued trial: the checkpoints to resume from
RESUMED_FROM = "sweeper:resumed_from"  # {"trial": n, "epoch": e}
WEIGHTS = "sweeper:weights"  # artifact id of a finished trial's final weights
CHECKPOINT_SECONDS = "sweeper:checkpoint_seconds"
STAGE = "sweeper:stage"  # the stage (1, 2, ...) a trial of a staged study ran in
CONFIRMS = "sweeper:confirms"  # on a confirmation run: the number of the trial it confirms
NARROWED = "sweeper:narrowed"  # study attr: {stage: the narrowed space it searched}


def _study_id(study: optuna.Study) -> int:
    return study._storage.get_study_id_from_name(study.study_name)


def set_study_attr(study: optuna.Study, key: str, value: Any) -> None:
    """Set one of sweeper's study attributes (JSON)."""
    study._storage.set_study_system_attr(_study_id(study), key, value)


def get_study_attr(study: optuna.Study, key: str, default: Any = None) -> Any:
    """One of sweeper's study attributes, or `default`."""
    return study._storage.get_study_system_attrs(_study_id(study)).get(key, default)


def save_gate(study: optuna.Study, report_dict: dict[str, Any]) -> None:
    """Save the gate report with the study."""
    set_study_attr(study, GATE, report_dict)
    study.set_user_attr("sweeper:gate_verdict", report_dict.get("verdict"))


def gate_of(study: optuna.Study) -> dict[str, Any] | None:
    """The study's saved gate report, or None."""
    return get_study_attr(study, GATE)


def dumps(value: Any) -> str:
    """JSON for an attribute (numbers that JSON cannot hold as text)."""
    return json.dumps(value, default=str)
