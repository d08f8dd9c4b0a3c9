"""`sweeper probe DEFINITION`: run only the study gate and print its verdict (exit 3 on fail)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

from sweeper.cli._common import console


def add_parser(sub: Any) -> None:
    """Add the command's subparser to `sub`, with its arguments."""
    s = sub.add_parser("probe", help="run only the sanity gate and print its verdict")
    s.add_argument("definition")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the command with the parsed `args`; its exit code."""
    import torch

    from sweeper.cli._display import gate_table
    from sweeper.definition import load_definition
    from sweeper.probes import Settings, run_gate
    from sweeper.search import reference_params
    from sweeper.task import add_search_paths, load_task, search_paths

    loaded = load_definition(args.definition)
    spec = loaded.spec
    add_search_paths(search_paths(loaded.path))
    # the threads a trial's runner gets, so the gate takes here what it takes in `run`
    torch.set_num_threads(max(1, int(spec.resources.cpus)))
    # with --json, stdout carries the report only: what the task prints goes to stderr
    quiet = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    with quiet:
        task = load_task(spec.task, spec.task_args)
        report = run_gate(
            task, params=reference_params(spec.search), settings=Settings.from_spec(spec.probes)
        )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        console().print(gate_table(report))
    return 3 if report.verdict == "fail" else 0
