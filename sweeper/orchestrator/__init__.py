"""Orchestration: the gate, then Optuna ask/tell with trials on Ray actors."""

from sweeper.orchestrator._driver import open_study, run_study
from sweeper.orchestrator._recording import Outcome, Progress

__all__ = ["Outcome", "Progress", "open_study", "run_study"]
