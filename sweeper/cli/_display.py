"""What the CLI shows: gate tables, live progress, plain log lines for non-interactive runs."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.table import Table

from sweeper.probes import Finding, Report, fmt

_STYLE = {"pass": "green", "skip": "dim", "warn": "yellow", "fail": "bold red"}


def gate_table(report: Report, title: str = "Study gate") -> Table:
    """The gate report as a rich table: probe, verdict, measured, expected, hint."""
    model = report.table()
    heading = f"{title}: {model.verdict.upper()} ({model.seconds:.1f}s)"
    table = Table(
        title=f"{heading}\n[bold]{model.root_line}[/]" if model.root_line else heading,
        title_justify="left",
        show_lines=False,
    )
    table.add_column("probe", no_wrap=True)  # names are never split
    table.add_column("verdict", no_wrap=True)
    for col in ("measured", "expected", "hint"):
        table.add_column(col, overflow="fold", ratio=1)
    for row in model.rows:
        v = row.verdict
        table.add_row(row.probe, f"[{_STYLE[v]}]{v}[/]", row.measured, row.expected, row.hint)
    return table


def params_text(params: dict[str, Any]) -> str:
    """`lr=0.003538, batch_size=64, …`: a trial's params on one line."""
    return ", ".join(f"{k}={fmt(v, 4)}" for k, v in params.items())


class ConsoleProgress:
    """Progress of `sweeper run`: a live status line on a terminal, log lines elsewhere."""

    def __init__(self, console: Console, mode: str = "auto") -> None:
        self.console = console
        self.mode = ("live" if console.is_terminal else "plain") if mode == "auto" else mode
        self.status: Any = None
        self.last_tick = 0.0
        self.last_plain = 0.0

    def __enter__(self) -> ConsoleProgress:
        if self.mode == "live":
            self.status = self.console.status("starting…")
            self.status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.__exit__(*exc)

    def gate_probe(self, finding: Finding) -> None:
        """One gate probe ended: its verdict and time, as the gate goes (also in --plain)."""
        if self.mode == "quiet":
            return
        if self.status is not None:
            self.status.update(f"study gate: {finding.probe} {finding.verdict}")
        else:
            style = {"fail": "red", "warn": "yellow"}.get(finding.verdict, "")
            verdict = f"[{style}]{finding.verdict}[/]" if style else finding.verdict
            self.console.print(
                f"gate  {finding.probe:<25} {verdict:<4} {finding.seconds:6.2f}s",
                highlight=False,
            )

    def gate_done(self, report: Report) -> None:
        """Print the gate's table."""
        if self.mode != "quiet":
            self.console.print(gate_table(report))

    def note(self, text: str) -> None:
        """Print a note for the user."""
        if self.mode != "quiet":
            self.console.print(f"[cyan]note[/]: {text}")

    def trial_done(
        self, number: int, state: str, value: float | None, params: dict[str, Any], note: str
    ) -> None:
        """One line per finished trial: state, value, params, and why it stopped."""
        if self.mode == "quiet":
            return
        style = {"complete": "green", "pruned": "yellow", "fail": "red"}.get(state, "")
        val = f" value={value:.4f}" if value is not None else ""
        why = f" — {note}" if note and state != "complete" else ""
        self.console.print(
            f"trial {number:>4} [{style}]{state:<8}[/]{val}  {params_text(params)}{why}",
            highlight=False,
            soft_wrap=self.mode == "plain",  # one line per trial in a log; wrapped on a terminal
        )

    def tick(self, counts: dict[str, int], best: float | None, elapsed: float, target: int) -> None:
        """Update the live line (or, in --plain, a log line every few seconds)."""
        now = time.monotonic()
        finished = counts.get("complete", 0) + counts.get("pruned", 0)
        line = (
            f"{finished}/{target} finished · running {counts.get('running', 0)} · "
            f"pruned {counts.get('pruned', 0)} · failed {counts.get('fail', 0)} · "
            f"best {fmt(best) if best is not None else '—'} · {elapsed:.0f}s"
        )
        if finished:
            rate = elapsed / finished
            line += f" · ~{max(0.0, rate * (target - finished)):.0f}s left"
        if self.mode == "live" and now - self.last_tick > 0.2:
            self.last_tick = now
            self.status.update(line)
        elif self.mode == "plain" and now - self.last_plain > 15:
            self.last_plain = now
            self.console.print(f"progress: {line}", highlight=False)
