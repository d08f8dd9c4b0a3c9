"""`sweeper run DEFINITION`: the gate, then the search; running it again resumes the study."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from sweeper._redact import redact
from sweeper.cli._common import DEFAULT_STORAGE, console, positive, with_storage

if TYPE_CHECKING:
    from sweeper.definition import Definition


def add_parser(sub: Any) -> None:
    """Add the command's subparser to `sub`, with its arguments."""
    s = sub.add_parser("run", help="gate, then search; re-running resumes the study")
    s.add_argument("definition")
    s.add_argument("--storage", help="override the definition's storage URL")
    s.add_argument(
        "--address", help="existing Ray cluster: auto or ray://HOST:10001 (default: local Ray)"
    )
    s.add_argument(
        "--trials",
        type=positive,
        help="run this many more finished trials from this driver, whatever the budget says "
        "(several drivers on one study: each gets its own count)",
    )
    s.add_argument(
        "--show-output",
        action="store_true",
        help="print the task's own output (its prints, its frameworks' banners and warnings) "
        "here; by default it goes to the study's workers.log, whose path is printed once",
    )
    g = s.add_mutually_exclusive_group()
    g.add_argument("--quiet", action="store_true", help="print only the result")
    g.add_argument("--plain", action="store_true", help="log lines instead of a live view")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the command with the parsed `args`; its exit code."""
    from sweeper.definition import load_definition

    loaded = load_definition(args.definition)  # before any heavy import: a bad file fails fast
    from sweeper.cli._display import ConsoleProgress
    from sweeper.errors import GateFailedError
    from sweeper.orchestrator import run_study
    from sweeper.orchestrator._cluster import warnings_kept
    from sweeper.orchestrator.jobs import STORAGE_ENV  # set by `sweeper submit` for its job

    storage = args.storage or os.environ.get(STORAGE_ENV)
    if storage:
        loaded = with_storage(loaded, storage)
    spec = loaded.spec
    out_console = console()
    mode = "quiet" if args.quiet else ("plain" if args.plain else "auto")
    if mode != "auto":
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # plain lines: no colour codes
    if mode != "quiet":
        budget = f"{args.trials} more trials" if args.trials else f"{spec.budget.trials} trials"
        out_console.print(
            f"study [bold]{spec.name}[/] · store {redact(spec.storage)} · "
            f"{budget} x {spec.budget.epochs} epochs"
        )
    with ConsoleProgress(out_console, mode) as progress, warnings_kept():
        try:
            out = run_study(
                loaded,
                progress=progress,
                address=args.address,
                trials=args.trials,
                show_output=args.show_output or None,
            )
        except GateFailedError as e:
            out_console.print(f"[bold red]gate failed[/]: {e}")
            return e.exit_code
    _summary(out_console, spec, out)
    return 1 if out.best_value is None else 0


def _summary(out_console: Any, spec: Definition, out: Any) -> None:
    """The run's last lines: the counts, why it stopped early, the best, how to get it."""
    from sweeper.cli._display import params_text

    c = out.counts
    saved = (
        f"; probes saved ~{out.probe_seconds_saved:.1f} trial-seconds"
        if out.probe_seconds_saved
        else ""
    )
    out_console.print(
        f"\ndone in {out.elapsed_s:.1f}s: {c.get('complete', 0)} complete, "
        f"{c.get('pruned', 0)} pruned, {c.get('fail', 0)} failed{saved}"
    )
    if out.stopped_reason:
        out_console.print(f"[yellow]stopped early:[/] {out.stopped_reason}")
    if out.front is not None and out.front.members:
        f = out.front
        out_console.print(
            f"Pareto front: {len(f.members)} trials over "
            + ", ".join(
                f"{m} ({'max' if up else 'min'})"
                for m, up in zip(f.metrics, f.maximize, strict=True)
            ),
            highlight=False,
        )
        for t in f.members[:8]:
            values = ", ".join(f"{m} {v:.4g}" for m, v in f.values(t).items())
            out_console.print(f"  trial {t.number}: {values}", highlight=False)
        if len(f.members) > 8:
            out_console.print(f"  … and {len(f.members) - 8} more", highlight=False)
    elif out.best_value is not None:
        confirmed = out.ranking.confirmed.get(out.best_number) if out.ranking else None
        value = f"{out.best_value:.4f}"
        if confirmed is not None and confirmed.mean is not None:
            value = (
                f"{confirmed.mean:.4f} ± {confirmed.std:.4f} over {len(confirmed.values)} new "
                f"seeds (search run {out.best_value:.4f})"
            )
        out_console.print(
            f"best {spec.objective.metric} = {value} (trial {out.best_number}): "
            + params_text(out.best_params or {}),
            highlight=False,
        )
    for line in out.after:
        out_console.print(line, highlight=False, markup=False)
    storage_arg = "" if spec.storage == DEFAULT_STORAGE else f" --storage '{redact(spec.storage)}'"
    if out.best_value is None and spec.constraints and c.get("complete", 0):
        bounds = ", ".join(k.describe() for k in spec.constraints)
        out_console.print(
            f"[red]no completed trial kept the constraints[/] ({bounds}): "
            f"`sweeper export {spec.name}{storage_arg} --out trials.csv` has each trial's "
            "metrics and `feasible`. Loosen a bound, or search a space that can keep it, then "
            "run the same command to go on",
            highlight=False,
        )
    elif out.best_value is None:
        by = ", ".join(f"{k} ({n})" for k, n in sorted(out.ended_by.items(), key=lambda i: -i[1]))
        out_console.print(
            "[red]no trial completed[/]"
            + (f": the trials were ended by {by}" if by else "")
            + f"; each trial's line above says why (`sweeper status {spec.name}{storage_arg}` "
            "lists them). Fix that, then run the same command to go on",
            highlight=False,
        )
    elif out.front is not None:
        out_console.print(
            f"the front:    sweeper best {spec.name}{storage_arg}  (--pick "
            f"{'|'.join(o.metric for o in spec.goals())}|knee --format json for one member)"
        )
    else:
        out_console.print(f"best config:  sweeper best {spec.name}{storage_arg} --format json")
    out_console.print(f"dashboard:    sweeper dashboard{storage_arg}")
