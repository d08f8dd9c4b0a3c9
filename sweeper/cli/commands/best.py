"""`sweeper best NAME`: the best config (or the top K), optionally with the best weights."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sweeper.cli._common import add_study_args, positive


def add_parser(sub: Any) -> None:
    """Add the command's subparser to `sub`, with its arguments."""
    s = sub.add_parser("best", help="print the best config (or the top K)")
    add_study_args(s)
    s.add_argument("--format", choices=("json", "yaml", "python", "env"), default="json")
    s.add_argument("--top", type=positive, help="the K best configs, best first")
    s.add_argument("--weights", help="also write the best trial's weights (a state_dict) here")
    s.add_argument("--store", help="checkpoint store, if not where the run recorded it")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the command with the parsed `args`; its exit code."""
    from sweeper.export import render, top_configs

    if args.weights:
        from pathlib import Path

        from sweeper.export import write_weights

        best = write_weights(args.name, args.storage, Path(args.weights), args.store)
        print(
            f"wrote the weights of trial {best.number} ({best.metric} = {best.value:.6g}) to "
            f"{args.weights}: model.load_state_dict(torch.load({args.weights!r}))",
            file=sys.stderr,
        )
    configs = top_configs(args.name, storage=args.storage, k=args.top or 1)
    print(render(configs, args.format, as_list=args.top is not None))
    return 0
