"""`sweeper validate DEFINITION`: check a study definition and that its task can be found."""

from __future__ import annotations

import argparse
from typing import Any

from sweeper._redact import redact
from sweeper.cli._common import check_task_found


def add_parser(sub: Any) -> None:
    """Add the command's subparser to `sub`, with its arguments."""
    s = sub.add_parser("validate", help="check a study definition; runs nothing")
    s.add_argument("definition")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the command with the parsed `args`; its exit code."""
    from sweeper.definition import load_definition

    loaded = load_definition(args.definition)
    spec = loaded.spec
    check_task_found(loaded)
    params = spec.search.params()
    searched = [n for n, p in params.items() if p.type != "fixed"]
    print(
        f"{args.definition}: OK — study {spec.name!r}, task {spec.task}, "
        f"{spec.budget.trials} trials x {spec.budget.epochs} epochs, "
        f"searching {', '.join(searched)}; store {redact(spec.storage)}"
    )
    return 0
