"""`sweeper report NAME`: one self-contained HTML report of the study."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sweeper.cli._common import add_study_args


def add_parser(sub: Any) -> None:
    """Add the command's subparser to `sub`, with its arguments."""
    s = sub.add_parser("report", help="one self-contained HTML report")
    add_study_args(s)
    s.add_argument("--out", default="report.html", help="output file (%(default)s)")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the command with the parsed `args`; its exit code."""
    from pathlib import Path

    from sweeper.report import build_report

    html = build_report(args.name, args.storage)
    Path(args.out).write_text(html, encoding="utf-8")
    print(f"wrote {args.out} ({len(html) / 1e6:.1f} MB, opens offline)", file=sys.stderr)
    return 0
