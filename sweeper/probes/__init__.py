"""Sanity probes: the study gate (once, before the search) and per-trial probes.

Each probe returns a Finding: probe, verdict (pass / warn / fail), measured, expected, hint.
`probe(task)` runs the gate on a sweeper.Task from Python, without a study.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what mypy sees; at run time each name is imported on first use
    from sweeper.probes._activations import init_profiles
    from sweeper.probes._context import REFERENCE_PARAMS, Context
    from sweeper.probes._finding import Finding, Report, fmt
    from sweeper.probes._gate import GATE, probe, run_gate
    from sweeper.probes._settings import GATE_PROBES, TRIAL_CHECKS, Settings, Thresholds
    from sweeper.probes._trial import TrialMonitor
    from sweeper.probes._trial_memory import MemoryGrowth, rss_mb
    from sweeper.probes._trial_start import chance_levels, trial_start_checks, untrained_loss

# imported on first use, so reading a finding (`sweeper status`) does not import torch
_LAZY = {
    "REFERENCE_PARAMS": "_context",
    "Context": "_context",
    "Settings": "_settings",
    "Thresholds": "_settings",
    "GATE_PROBES": "_settings",
    "TRIAL_CHECKS": "_settings",
    "Finding": "_finding",
    "Report": "_finding",
    "fmt": "_finding",
    "GATE": "_gate",
    "probe": "_gate",
    "run_gate": "_gate",
    "TrialMonitor": "_trial",
    "MemoryGrowth": "_trial_memory",
    "rss_mb": "_trial_memory",
    "trial_start_checks": "_trial_start",
    "chance_levels": "_trial_start",
    "untrained_loss": "_trial_start",
    "init_profiles": "_activations",
}
__all__ = [
    "GATE",
    "GATE_PROBES",
    "TRIAL_CHECKS",
    "Thresholds",
    "REFERENCE_PARAMS",
    "Context",
    "Finding",
    "Report",
    "Settings",
    "TrialMonitor",
    "MemoryGrowth",
    "rss_mb",
    "chance_levels",
    "fmt",
    "init_profiles",
    "probe",
    "run_gate",
    "trial_start_checks",
    "untrained_loss",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"sweeper.probes.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sweeper.probes' has no attribute {name!r}")
