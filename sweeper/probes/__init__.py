"""Sanity probes: the study gate (once, before the search) and per-trial probes.

Each probe returns a Finding: probe, verdict (pass / warn / fail), measured, expected, hint.
`probe(task)` runs the gate on a sweeper.Task from Python, without a study.
"""

from sweeper.probes._context import REFERENCE_PARAMS, Context, Settings
from sweeper.probes._finding import Finding, Report, fmt
from sweeper.probes._gate import GATE, probe, run_gate
from sweeper.probes._trial import TrialMonitor, trial_start_checks

__all__ = [
    "GATE",
    "REFERENCE_PARAMS",
    "Context",
    "Finding",
    "Report",
    "Settings",
    "TrialMonitor",
    "fmt",
    "probe",
    "run_gate",
    "trial_start_checks",
]
