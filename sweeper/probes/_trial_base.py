"""What the trial monitor's checks share: the monitor's state as its parts read it, and how a
check stops the trial or warns. The checks live in the parts: optimizer steps in `_trial.py`,
the weight updates in `_trial_updates.py`, the layer hooks in `_trial_layers.py`, the reported
metrics in `_trial_metrics.py`."""

from __future__ import annotations

import time
from typing import Any

import torch

from sweeper.errors import TrialStopped
from sweeper.probes._finding import Finding
from sweeper.probes._layer_watch import LayerWatch
from sweeper.probes._settings import TRIAL_CHECKS, Thresholds


class MonitorBase:
    """The state every part of the trial monitor reads, and its verdicts: `_stop` raises
    TrialStopped with the check's name and hint, `_warn` records a warning once per trial."""

    s: Thresholds
    model: torch.nn.Module | None
    optimizer: torch.optim.Optimizer | None
    layers: LayerWatch | None
    findings: list[Finding]
    warned: set[str]
    stopped: str | None
    seconds: float
    steps: int
    epochs: int | None
    start: float | None  # the first loss handed to `on_loss`

    def _timed(self, check: Any) -> None:
        t = time.perf_counter()
        try:
            check()
        finally:
            self.seconds += time.perf_counter() - t

    def _lr(self, group: int = 0) -> float:
        """The peak lr of a parameter group (schedulers keep it as `initial_lr`)."""
        assert self.optimizer is not None
        g = self.optimizer.param_groups[group]
        return float(g.get("initial_lr", g["lr"]))

    # -- verdicts ------------------------------------------------------------------------------
    def _stop(self, probe: str, measured: Any, expected: str, hint: str) -> None:
        assert probe in TRIAL_CHECKS, probe
        self.findings.append(Finding(probe, "fail", measured, expected, hint))
        raise TrialStopped(self._mark_stopped(f"{probe}: {hint}"))

    def _mark_stopped(self, why: str) -> str:
        """Record why the trial stops, on this monitor and on the one it was made beside
        (a further model's monitor stops the whole trial)."""
        self.stopped = why
        parent = getattr(self, "parent", None)
        if parent is not None:
            parent.stopped = why
        return why

    def _warn(self, probe: str, measured: Any, expected: str, hint: str) -> None:
        """A warning, once per trial (the study shows it once, unless it gets worse)."""
        assert probe in TRIAL_CHECKS, probe
        if probe not in self.warned:
            self.warned.add(probe)
            self.findings.append(Finding(probe, "warn", measured, expected, hint))
