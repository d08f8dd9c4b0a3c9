"""`sweeper status NAME`: trials done, running, pruned and failed, the best so far, the gate's
verdict, Ray jobs and checkpoints; `--json` for scripts."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sweeper._redact import redact
from sweeper.cli._common import add_study_args, console


def add_parser(sub: Any) -> None:
    """Add the command's subparser to `sub`, with its arguments."""
    s = sub.add_parser("status", help="trials done/running/pruned/failed, best so far")
    add_study_args(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the command with the parsed `args`; its exit code."""
    from sweeper.export import study_status

    status = study_status(args.name, args.storage)
    if args.json:
        print(json.dumps(status.to_json(), indent=2, default=str))
        return 0
    out = console()
    out.print(
        f"study [bold]{args.name}[/] ({redact(args.storage)}): {status.trials} trials — "
        + ", ".join(f"{k} {v}" for k, v in sorted(status.counts.items()))
    )
    for job in status.jobs[-3:]:
        out.print(f"Ray job {job['id']} on {job['address']}: {job['state']}")
    _study_lines(out, status)
    _stopped_lines(out, status.recent_stopped)
    if status.after is not None:
        for line in status.after.lines():
            out.print(line, highlight=False, markup=False)
    return 0


def _study_lines(out: Any, status: Any) -> None:
    """Probe savings, the best trial, the checkpoint store, and what of the gate did not pass
    (`sweeper probe` shows the whole table)."""
    from sweeper.cli._display import gate_table, params_text

    if status.seconds_saved:
        saved = status.seconds_saved
        out.print(f"probes stopped broken trials early, saving ~{saved:.1f} trial-seconds")
    best = status.best
    front = status.front
    if front is not None:
        hv = front["hypervolume"]
        out.print(
            f"Pareto front: {front['size']} trials over {', '.join(front['metrics'])}"
            + (f", hypervolume {hv:.4f} (objectives scaled over the feasible trials)" if hv else "")
            + f"; `sweeper best {status.name}` prints it"
        )
        if best is not None:
            values = ", ".join(
                f"{m} {v:.4g}" for m, v in zip(front["metrics"], best.values, strict=False)
            )
            out.print(f"first on {front['metrics'][0]}: trial {best.number} ({values})")
    elif best is not None:
        out.print(f"best value {best.value:.4f} (trial {best.number}): {params_text(best.params)}")
    store = status.checkpoint_store
    if store is not None:
        size = store["bytes"]
        out.print(
            f"checkpoints and weights: {store['weights']} trials' weights kept, "
            + (f"{size / 1e6:.1f} MB" if size is not None else "size not known")
            + f" in {store['location']}"
        )
    gate = status.gate
    if gate:
        flagged = [f for f in gate["findings"] if f["verdict"] in ("warn", "fail")]
        out.print(
            f"gate: {gate['verdict'].upper()} ({gate.get('seconds', 0):.1f}s, "
            f"{len(gate['findings'])} probes"
            + (f", {len(flagged)} not passed)" if flagged else ")")
        )
        if flagged:
            from sweeper.probes import Report

            shown = Report.from_dict({**gate, "findings": flagged})
            out.print(gate_table(shown, title="not passed"))


def _stopped_lines(out: Any, recent: list[Any]) -> None:
    """The last pruned and failed trials with why; the pruner's own stops in one line."""
    from sweeper.store import attrs

    stopped = [t for t in recent if attrs.STOPPED in t.user_attrs or attrs.ERROR in t.user_attrs]
    by_pruner = [
        t for t in stopped if str(t.user_attrs.get(attrs.STOPPED, "")).startswith(attrs.BY_PRUNER)
    ]
    if by_pruner:  # the search working as meant: one line, not one per trial
        epochs = sorted({t.last_step + 1 for t in by_pruner if t.last_step is not None})
        span = f", at epochs {epochs[0]}–{epochs[-1]}" if len(epochs) > 1 else ""
        out.print(f"{attrs.BY_PRUNER}{span}: trials {', '.join(str(t.number) for t in by_pruner)}")
    for t in stopped:
        if t in by_pruner:
            continue
        why = t.user_attrs.get(attrs.ERROR) or t.user_attrs.get(attrs.STOPPED)
        out.print(f"trial {t.number} {t.state.name.lower()}: {why}")
