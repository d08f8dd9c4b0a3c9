"""`sweeper init [NAME]`: write a starter study definition and task module here."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    """Add the command's subparser to `sub`, with its arguments."""
    s = sub.add_parser("init", help="write a starter study definition and task module here")
    s.add_argument("name", nargs="?", default="my-study", help="study name (%(default)s)")
    s.add_argument("--force", action="store_true", help="overwrite files that exist")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the command with the parsed `args`; its exit code."""
    from pathlib import Path

    from sweeper.cli._starter import write_starter

    written = write_starter(Path.cwd(), args.name, force=args.force)
    for path in written:
        print(f"wrote {path.name}")
    print(
        f"next: fill in the marked parts of {written[1].name}, then\n"
        f"  sweeper probe {written[0].name}   # the sanity gate alone\n"
        f"  sweeper run {written[0].name}     # gate, then search"
    )
    return 0
