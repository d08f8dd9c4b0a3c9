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
    s.add_argument(
        "--format",
        choices=("json", "yaml", "python", "env", "table"),
        help="json (default; for several objectives: table), yaml, python, env, table",
    )
    s.add_argument("--top", type=positive, help="the K best configs, best first")
    s.add_argument(
        "--pick",
        help="several objectives: the front member best on this objective, or 'knee' (nearest "
        "the ideal point, each objective scaled over the front); default: the first "
        "objective's best",
    )
    s.add_argument("--weights", help="also write the best trial's weights (a state_dict) here")
    s.add_argument("--store", help="checkpoint store, if not where the run recorded it")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the command with the parsed `args`; its exit code."""
    import json

    from sweeper.export import configs_table, front_json, render, top_configs

    if args.weights:
        from pathlib import Path

        from sweeper.export import write_weights

        best = write_weights(args.name, args.storage, Path(args.weights), args.store, args.pick)
        print(
            f"wrote the weights of trial {best.number} ({best.metric} = {best.value:.6g}) to "
            f"{args.weights}: model.load_state_dict(torch.load({args.weights!r}))",
            file=sys.stderr,
        )
    configs = top_configs(args.name, storage=args.storage, k=args.top, pick=args.pick)
    several = bool(configs[0].values)  # a Pareto front: the whole of it unless --top
    fmt = args.format or ("table" if several else "json")
    if fmt == "table":
        print(configs_table(configs))
    elif several and fmt == "json" and args.top is None:
        print(json.dumps(front_json(configs), indent=2))
    elif several and args.top is None:  # the picked member, as one objective's best prints
        print(render(configs[0], fmt))
    else:
        print(render(configs, fmt, as_list=args.top is not None))
    return 0
