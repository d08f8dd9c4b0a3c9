"""Orchestration: the gate, then Optuna ask/tell with trials on Ray actors."""

from sweeper.orchestrator._driver import Outcome, Progress, open_study, run_study

__all__ = ["Outcome", "Progress", "open_study", "run_study"]
