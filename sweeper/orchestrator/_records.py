"""What a runner actor's calls return to the driver, typed: pickled through Ray as they are,
so the driver reads fields, not keys it has to probe for."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sweeper.probes import Finding, Report


@dataclass
class WorkerInfo:
    """Where trials run: the device (with the GPU's name), Ray node, process, torch version."""

    device: str
    gpu_ids: list[str]
    node: str
    pid: int
    torch: str

    def to_dict(self) -> dict[str, Any]:
        """As plain data, for the trial's user attributes."""
        return asdict(self)


@dataclass
class Loaded:
    """`load`: the task imported and its data on the device, or the error that stopped it."""

    worker: WorkerInfo | None = None
    error: str | None = None


@dataclass
class GateStarted:
    """`gate_start`: the gate runs in a thread of the worker, or could not start."""

    error: str | None = None


@dataclass
class GatePoll:
    """`gate_poll`: the findings since the last poll, the probe running now (for how long and
    where in the user's code), and the report once the gate is done. `lost`: the worker has
    no gate running (it was restarted after a crash)."""

    findings: list[Finding] = field(default_factory=list)
    running: str | None = None
    seconds: float = 0.0
    where: str = ""
    done: Report | None = None
    error: str | None = None  # the gate could not run (the task's code raised)
    lost: bool = False


@dataclass
class TrialUpdate:
    """`start` and `epoch`: what happened to the trial since the last call. At most one of
    `error`, `stopped`, `metrics` (an epoch's report) and `done` (the training code returned)
    is set; none after a `start` that did not run an epoch."""

    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    resumed_epoch: int | None = None  # the epoch the trial resumed after, from a checkpoint
    saved: list[dict[str, Any]] = field(default_factory=list)  # checkpoints written
    checkpoint_seconds: float | None = None
    probe_seconds: float | None = None
    seconds: float | None = None  # the epoch's wall time
    worker: WorkerInfo | None = None
    error: str | None = None
    stopped: str | None = None
    metrics: dict[str, float] | None = None
    done: bool = False
    rss_mb: float | None = None  # the worker's resident memory at this report

    @property
    def ended(self) -> bool:
        """The trial ended here (failed, stopped, or its training code returned)."""
        return self.error is not None or self.stopped is not None or self.done

    def then(self, later: TrialUpdate) -> TrialUpdate:
        """This update followed by `later` (a start and its first epoch, in one call)."""
        probe = [s for s in (self.probe_seconds, later.probe_seconds) if s is not None]
        return TrialUpdate(
            findings=self.findings + later.findings,
            notes=self.notes + later.notes,
            resumed_epoch=self.resumed_epoch,
            saved=self.saved + later.saved,
            checkpoint_seconds=later.checkpoint_seconds,
            probe_seconds=max(probe) if probe else None,
            seconds=later.seconds,
            worker=self.worker or later.worker,
            error=later.error,
            stopped=later.stopped,
            metrics=later.metrics,
            done=later.done,
            rss_mb=later.rss_mb,
        )
