"""No trial left RUNNING: who owns a running trial, and failing + re-queuing the orphans.

Optuna's heartbeat covers `study.optimize`, not ask/tell, so sweeper keeps its own records:
each trial a driver asks for carries the driver's token (host, pid, process start time). A
new driver on the same host sees at once that the owner is gone; for a driver on another host
it falls back to Optuna's heartbeat table (a trial whose heartbeat is older than the grace
period is stale).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from sweeper.store import GRACE_S, attrs, trials_in_states

log = logging.getLogger("sweeper")
MAX_RETRIES = 2  # a trial whose worker or driver died is re-run at most this many times


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def driver_token() -> str:
    """`host:pid:start` of this process."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or '?'}"


def driver_alive(token: str) -> bool | None:
    """Whether the driver of `token` is still running: True/False on this host, None (cannot
    tell) for a driver on another host."""
    parts = token.split(":")
    if len(parts) < 3:
        return None
    host, pid_s, start = ":".join(parts[:-2]), parts[-2], parts[-1]
    if host != socket.gethostname() or not pid_s.isdigit():
        return None
    pid = int(pid_s)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    now = _start_ticks(pid)
    return now is None or start == "?" or now == start


def requeue(
    study: optuna.Study,
    trial: FrozenTrial,
    why: str,
    max_retries: int = MAX_RETRIES,
    marks: dict[str, Any] | None = None,
) -> bool:
    """Fail a RUNNING trial with `why` recorded on it, and enqueue its params again (up to
    `max_retries` times for the same params), handing the re-run the trial's last checkpoints
    to resume from, and `marks` as user attributes. Returns False when another driver
    finished or failed it first, so exactly one driver re-queues a trial."""
    storage = study._storage
    tid = trial._trial_id
    retries = int(trial.user_attrs.get(attrs.RETRIES, 0))
    again = retries < max_retries
    note = f"{why}; " + (
        "re-queued with the same params" if again else f"gave up after {retries} retries"
    )
    try:
        storage.set_trial_user_attr(tid, attrs.ERROR, note[:2000])
        if not storage.set_trial_state_values(tid, state=TrialState.FAIL):
            return False
    except UpdateFinishedTrialError:
        return False
    if again:
        user_attrs: dict[str, Any] = {
            attrs.RETRY_OF: trial.number,
            attrs.RETRIES: retries + 1,
            **(marks or {}),
        }
        for key in (attrs.STAGE, attrs.CONFIRMS):  # the re-run is of the same stage, the
            if key in trial.user_attrs:  # confirmation of the same trial
                user_attrs[key] = trial.user_attrs[key]
        checkpoints = trial.user_attrs.get(attrs.CHECKPOINTS)
        if checkpoints:  # the re-run continues from the last checkpoint, not from epoch 0
            earlier = (trial.user_attrs.get(attrs.RESUME) or {}).get("chain", [])
            user_attrs[attrs.RESUME] = {
                "trial": trial.number,
                "trial_id": tid,
                "checkpoints": checkpoints,
                "chain": [*earlier, trial.number],  # runs whose files the re-run may hold
            }
        study.enqueue_trial(dict(trial.params), user_attrs=user_attrs, skip_if_exists=False)
    return True


def recover(study: optuna.Study, me: str) -> list[tuple[int, str]]:
    """Fail and re-queue trials left RUNNING by drivers that are gone. Returns (number, why)
    for each trial this call recovered."""
    storage: Any = study._storage
    stale_ids: set[int] = set()
    if hasattr(storage, "_get_stale_trial_ids") and storage.get_heartbeat_interval():
        # Optuna's own test of staleness (heartbeat older than the grace period, in the
        # database's clock); it is what optuna.storages.fail_stale_trials uses.
        stale_ids = set(storage._get_stale_trial_ids(study._study_id))
    now = dt.datetime.now()
    out = []
    for t in trials_in_states(storage, study._study_id, (TrialState.RUNNING,)):
        owner = t.system_attrs.get(attrs.DRIVER)
        alive = driver_alive(str(owner)) if owner is not None else None
        if owner == me or alive is True:  # a live driver on this host keeps its trials
            continue
        why = ""
        if alive is False:
            why = f"its driver (process {str(owner).split(':')[-2]}) died"
        elif t._trial_id in stale_ids:
            why = f"its driver stopped sending heartbeats for over {GRACE_S}s"
        elif (
            owner is None
            and t.datetime_start
            and (now - t.datetime_start).total_seconds() > (GRACE_S)
        ):
            # asked for by a driver that died before it could record itself
            why = "it was left running by a driver that is gone"
        if why and requeue(study, t, why):
            out.append((t.number, why))
    return out
