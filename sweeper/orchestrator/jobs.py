"""`sweeper submit`: the study as a Ray job, through Ray's own job submission API.

The definition's folder (the definition and the user's task code next to it) travels as the
job's working_dir; the job runs `sweeper run` on the cluster. The job is recorded with the
study, so `sweeper status` can show its state beside the study's progress.
"""

from __future__ import annotations

import datetime as dt
import shlex
import time
import uuid
from typing import Any

from sweeper._redact import redact
from sweeper.definition import LoadedDefinition
from sweeper.errors import SweeperError
from sweeper.orchestrator._cluster import EXCLUDES
from sweeper.store import attrs, sqlite_path

STORAGE_ENV = "SWEEPER_STORAGE"  # the store URL travels here, not on the job's command line
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def _client(address: str) -> Any:
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except Exception as e:
        raise SweeperError(
            f"cannot reach the Ray dashboard at {address}: {str(e).splitlines()[0]}. Give the "
            "head node's dashboard address, e.g. --address http://HEAD:8265 (`ray start --head` "
            "prints it)"
        ) from None


def check_cluster_store(storage: str) -> None:
    """A job runs in a temporary folder on the head node: a relative SQLite file would be
    written there and lost with the job."""
    path = sqlite_path(storage)
    if path is not None and not path.is_absolute():
        raise SweeperError(
            f"the store {storage} is a SQLite file relative to where the job runs, a temporary "
            "folder on the cluster that is deleted afterwards. Use a PostgreSQL store "
            "(--storage postgresql+psycopg://USER@HOST/DB) or an absolute SQLite path on a "
            "filesystem every node shares (--storage sqlite:////shared/sweeps.db)"
        )


def submit(loaded: LoadedDefinition, address: str, storage: str, extra_args: list[str]) -> str:
    """Submit the study as a Ray job; returns the job's submission id."""
    if loaded.path is None:
        raise SweeperError("submit needs a definition file")
    check_cluster_store(storage)
    spec = loaded.spec
    folder = loaded.path.resolve().parent
    job_id = f"sweeper-{spec.name}-{uuid.uuid4().hex[:8]}"
    entrypoint = " ".join(
        ["sweeper", "run", shlex.quote(loaded.path.name), "--plain", *map(shlex.quote, extra_args)]
    )
    client = _client(address)
    try:
        client.submit_job(
            entrypoint=entrypoint,
            submission_id=job_id,
            runtime_env={
                "working_dir": str(folder),
                "excludes": EXCLUDES,
                "env_vars": {STORAGE_ENV: storage, "PYTHONUNBUFFERED": "1"},
            },
            metadata={"sweeper_study": spec.name, "sweeper_store": redact(storage)},
        )
    except Exception as e:
        raise SweeperError(
            f"Ray refused the job: {redact(str(e).strip().splitlines()[-1])}"
        ) from None
    return job_id


def record_job(loaded: LoadedDefinition, storage: str, address: str, job_id: str) -> str | None:
    """Keep the job with the study (creating the study if the job has not yet). Returns a
    reason when the store cannot be reached from here."""
    from sweeper.orchestrator._driver import open_study
    from sweeper.store import open_storage

    try:
        study = open_study(loaded, open_storage(storage, heartbeat=False))
        jobs = list(attrs.get_study_attr(study, attrs.JOBS, []) or [])
        jobs.append(
            {
                "id": job_id,
                "address": redact(address),
                "submitted": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            }
        )
        attrs.set_study_attr(study, attrs.JOBS, jobs[-20:])
    except SweeperError as e:
        return str(e)
    return None


def job_state(address: str, job_id: str) -> str:
    """PENDING / RUNNING / SUCCEEDED / FAILED / STOPPED, or why it could not be read."""
    try:
        info = _client(address).get_job_info(job_id)
    except SweeperError:
        return f"unknown (Ray dashboard at {address} unreachable)"
    except Exception as e:
        return f"unknown ({str(e).splitlines()[0][:120]})"
    state = str(getattr(info.status, "value", info.status))
    if state == "FAILED" and info.message:
        state += f": {info.message.strip().splitlines()[-1][:300]}"
    return state


def wait(address: str, job_id: str, poll_s: float = 2.0) -> tuple[str, str]:
    """Wait for the job to end; returns (final status, its logs)."""
    client = _client(address)
    while True:
        status = str(client.get_job_status(job_id).value)
        if status in TERMINAL:
            return status, redact(client.get_job_logs(job_id))
        time.sleep(poll_s)
