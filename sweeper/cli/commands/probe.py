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

    from sweeper import _watchdog as watchdog
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
    settings = Settings.from_spec(spec.probes)
    with quiet:
        # loaded as a runner loads it, before the gate's watchdog is armed: importing the
        # task's libraries on a busy machine is not the gate making no progress
        task = load_task(spec.task, spec.task_args)
    with quiet, _watched(settings):
        report = run_gate(
            task,
            params=reference_params(spec.search),
            settings=settings,
            starting=lambda _name: watchdog.beat(),  # each probe's start is progress
        )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        console().print(gate_table(report))
    return 3 if report.verdict == "fail" else 0


@contextlib.contextmanager
def _watched(settings: Any) -> Any:
    """The gate in this process under the watchdog a runner has: a forward that never
    returns ends the command (exit 2) with the user's line instead of hanging it."""
    import os
    import tempfile
    from pathlib import Path

    from torch.nn.modules.module import register_module_forward_hook

    from sweeper import _watchdog as watchdog

    def hung(dump: Any) -> None:
        where = dump.describe() if dump is not None else "no frame of the task's code"
        print(
            f"error: the study gate hung: {where}. The line named is where the task's code "
            "waited (a forward, a DataLoader worker that never returns); fix it there, or "
            f"raise probes.watchdog_s for a model this slow. Every thread's stack: "
            f"{dump.path if dump is not None else '-'}",
            file=sys.stderr,
            flush=True,
        )
        os._exit(2)

    folder = Path(tempfile.gettempdir()) / "sweeper-probe"
    w = watchdog.install(
        folder,
        "probe",
        settings.watchdog_floor_s,
        settings.watchdog_factor,
        settings.watchdog_s,
        on_hang=hung,
    )
    hook = register_module_forward_hook(lambda *_: watchdog.beat())
    w.arm("the study gate")
    try:
        yield
    finally:
        w.disarm()
        hook.remove()
