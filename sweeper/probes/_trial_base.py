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
from sweeper.probes._ways import fix


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
    way: str  # how the trial trains: "sweeper", "fit", "lightning", "transformers"

    def _fix(self, check: str, default: str) -> str:
        """`check`'s fix in the words of the way the trial trains (`default`: a plain loop's)."""
        return fix(self.way, check, default)

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

    def _schedule_ended(self, when: str) -> None:
        """Stop the trial if every group's lr is 0 or a millionth of its peak or less (a
        StepLR stepped per batch reaches 1e-60 long before 0), naming `when` it was seen."""
        if self.optimizer is None:
            return
        groups = self.optimizer.param_groups
        lrs = [float(g["lr"]) for g in groups]
        peaks = [float(g.get("initial_lr", lr)) for lr, g in zip(lrs, groups, strict=True)]
        if lrs and all(lr <= 1e-6 * peak for lr, peak in zip(lrs, peaks, strict=True)):
            self._stop(
                "lr_schedule",
                max(lrs),
                "lr above a millionth of its peak until the last epoch",
                f"the lr is {max(lrs):.3g} in every parameter group {when}, a millionth of its "
                "peak or less, so the rest of the trial trains nothing: "
                + self._fix(
                    "lr_schedule",
                    "the schedule ends too early (T_max / total steps smaller than the "
                    "training, or a per-epoch scheduler such as StepLR stepped every batch)",
                ),
            )

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
