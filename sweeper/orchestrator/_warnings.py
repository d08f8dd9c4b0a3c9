"""Per-trial warnings as the user sees them during a run: each check's warning once per study,
and again only when a later trial's is worse. Every trial's own findings stay in the store
(`sweeper status`, the report, the dashboard); this only keeps the console readable, since a
warning repeated on every trial is noise that users learn to ignore."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sweeper.probes import Finding

WORSE = 1.5  # a warning shows again when its measure grows by this factor


def size(measured: Any) -> float:
    """A warning's measure as one number: the value, or the largest value of a per-layer dict."""
    if isinstance(measured, bool):
        return float(measured)
    if isinstance(measured, (int, float)):
        return abs(float(measured))
    if isinstance(measured, dict):
        return max((size(v) for v in measured.values()), default=0.0)
    return 0.0


class StudyWarnings:
    """Shows each per-trial check's warning through `note` the first time a trial gives it,
    then only when a later trial's measure is WORSE times the last one shown."""

    def __init__(self, note: Callable[[str], None]) -> None:
        self.note = note
        self.shown: dict[str, float] = {}

    def see(self, trial: int, findings: list[Finding]) -> None:
        """Show the warnings among a trial's new findings that are new to the study or worse."""
        for f in findings:
            if f.verdict != "warn":
                continue
            probe, now = f.probe, size(f.measured)
            before = self.shown.get(probe)
            if before is not None and not now > WORSE * before:
                continue
            self.shown[probe] = now
            again = ", worse than before" if before is not None else ""
            self.note(
                f"trial {trial} warns {probe}{again}: {f.hint or f.expected} "
                "(shown once per study unless it gets worse; `sweeper status` lists each "
                "trial's findings)"
            )
