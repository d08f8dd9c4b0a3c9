"""A search slot: one runner actor, the trial it runs and where that trial stands."""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any

import optuna

from sweeper.probes import Finding


class Phase(enum.Enum):
    """What a slot's pending runner call is doing."""

    IDLE = "idle"  # no call pending
    START = "start"  # building the trial and training its first epoch
    EPOCH = "epoch"  # training the next epoch
    REVIVE = "revive"  # waiting for a restarted worker to load the task again


@dataclass
class Slot:
    """One runner actor and the trial it is running, if any."""

    runner: Any
    trial: optuna.Trial | None = None
    params: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    epochs: int = 0  # how many the trial trains (its stage's; a confirmation run's: the last)
    prune: bool = True  # whether the pruner may stop it (never a confirmation run)
    ref: Any = None  # the pending call on the runner
    phase: Phase = Phase.IDLE
    started: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    probe_seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)  # the last epoch's, all of them
    value: float | None = None  # the objective's last reported value
    checkpoints: list[dict[str, Any]] = field(default_factory=list)  # newest first
    weights: str | None = None  # artifact id of the final weights the runner wrote
    chain: list[int] = field(default_factory=list)  # earlier runs this trial continues
    resume: dict[str, Any] | None = None
    checkpoint_seconds: float = 0.0
    revives: int = 0  # revive calls that failed in a row
    peak_mb: float = 0.0  # the worker's largest resident memory seen at the trial's reports

    @property
    def busy(self) -> bool:
        """Whether the slot runs a trial."""
        return self.trial is not None

    def take(
        self, trial: optuna.Trial, params: dict[str, Any], epochs: int, prune: bool = True
    ) -> None:
        """Start over with a new trial: nothing of the one before is kept."""
        self.trial, self.params, self.epoch = trial, params, 0
        self.epochs, self.prune = epochs, prune
        self.started = time.perf_counter()
        self.findings, self.probe_seconds = [], 0.0
        self.metrics, self.value = {}, None
        self.checkpoints, self.weights, self.chain, self.resume = [], None, [], None
        self.checkpoint_seconds = 0.0
        self.peak_mb = 0.0

    def clear(self) -> None:
        """The trial is over (or dropped): no trial, no pending call."""
        self.trial, self.ref, self.phase = None, None, Phase.IDLE
