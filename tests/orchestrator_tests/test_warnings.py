"""A per-trial warning reaches the console once per study, and again only when it gets worse."""

from __future__ import annotations

from sweeper.orchestrator._warnings import StudyWarnings, size
from sweeper.probes import Finding


def _warn(probe: str, measured: object) -> Finding:
    return Finding(probe, "warn", measured, "", hint=f"{probe} hint")


def test_each_check_warns_once_per_study_then_only_when_worse() -> None:
    said: list[str] = []
    warnings = StudyWarnings(said.append)
    for trial in range(5):  # the same warning on every trial: shown once
        warnings.see(trial, [_warn("dying_units", {"net.1": 0.55}), Finding("x", "pass", 0, "")])
    assert len(said) == 1 and said[0].startswith("trial 0 warns dying_units: dying_units hint")
    warnings.see(5, [_warn("dying_units", {"net.1": 0.7})])  # not 1.5x worse
    warnings.see(6, [_warn("loss_oscillation", 0.4)])  # another check: shown
    warnings.see(7, [_warn("dying_units", {"net.1": 0.9, "net.4": 0.3})])  # 0.9 > 1.5 x 0.55
    assert [s.split(":")[0] for s in said] == [
        "trial 0 warns dying_units",
        "trial 6 warns loss_oscillation",
        "trial 7 warns dying_units, worse than before",
    ]


def test_a_warnings_size_is_its_largest_number() -> None:
    assert size(0.3) == 0.3 and size(-2) == 2.0 and size({"a": 0.1, "b": 0.6}) == 0.6
    assert size("eval") == 0.0 and size(None) == 0.0
