"""`sweeper submit DEFINITION --address URL`: run the study as a Ray job on a cluster."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from sweeper._redact import redact
from sweeper.cli._common import DEFAULT_STORAGE, check_task_found, positive


def add_parser(sub: Any) -> None:
    """Add the command's subparser to `sub`, with its arguments."""
    s = sub.add_parser("submit", help="run the study as a Ray job on a cluster")
    s.add_argument("definition")
    s.add_argument(
        "--address",
        default=os.environ.get("RAY_ADDRESS"),
        required=not os.environ.get("RAY_ADDRESS"),
        help="the Ray dashboard of the cluster's head, e.g. http://HEAD:8265",
    )
    s.add_argument("--storage", help="store URL the cluster reaches (PostgreSQL)")
    s.add_argument("--trials", type=positive, help="as for `run`")
    s.add_argument("--wait", action="store_true", help="wait for the job and print its logs")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the command with the parsed `args`; its exit code."""
    from sweeper.definition import load_definition
    from sweeper.orchestrator.jobs import record_job, submit, wait

    loaded = load_definition(args.definition)
    check_task_found(loaded)  # the task runs on the cluster; here it must at least be found
    storage = args.storage or loaded.spec.storage
    extra = ["--trials", str(args.trials)] if args.trials else []
    job_id = submit(loaded, args.address, storage, extra)
    name = loaded.spec.name
    storage_arg = "" if storage == DEFAULT_STORAGE else f" --storage '{redact(storage)}'"
    print(job_id)
    problem = record_job(loaded, storage, args.address, job_id)
    out = sys.stderr
    print(f"submitted study {name!r} as Ray job {job_id} to {redact(args.address)}", file=out)
    if problem:
        print(f"note: the job is not recorded with the study ({problem})", file=out)
    print(f"follow it:  sweeper status {name}{storage_arg}", file=out)
    print(f"logs:       ray job logs {job_id} --address {redact(args.address)} --follow", file=out)
    if not args.wait:
        return 0
    status, logs = wait(args.address, job_id)
    print(logs, end="" if logs.endswith("\n") else "\n", file=out)
    print(f"job {job_id}: {status}", file=out)
    return 0 if status == "SUCCEEDED" else 1
