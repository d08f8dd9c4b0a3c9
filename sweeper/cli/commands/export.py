"""`sweeper export NAME --out FILE`: every trial as a table (CSV or Parquet) for pandas."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sweeper.cli._common import add_study_args


def add_parser(sub: Any) -> None:
    """Add the command's subparser to `sub`, with its arguments."""
    s = sub.add_parser("export", help="all trials as a table for pandas")
    add_study_args(s)
    s.add_argument("--out", required=True, help="results.csv or results.parquet")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the command with the parsed `args`; its exit code."""
    from pathlib import Path

    from sweeper.export import export_trials

    n = export_trials(args.name, args.storage, Path(args.out))
    print(f"wrote {n} trials of {args.name!r} to {args.out}", file=sys.stderr)
    return 0
