"""Showing results: the gate in optuna-dashboard (note, artifacts), trial summaries, and the
self-contained HTML report."""

from sweeper.report._dashboard import (
    gate_note,
    publish_gate,
    publish_results,
    results_note,
    trial_summary,
)
from sweeper.report._gate_plots import gate_plots
from sweeper.report._html import build_report
from sweeper.report._svg import line_chart

__all__ = [
    "build_report",
    "gate_note",
    "gate_plots",
    "line_chart",
    "publish_gate",
    "publish_results",
    "results_note",
    "trial_summary",
]
