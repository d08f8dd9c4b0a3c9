"""Exceptions a user can act on. Every one says what was wrong, where, and what to do."""

from __future__ import annotations

__all__ = [
    "SweeperError",
    "DefinitionError",
    "TaskError",
    "ClusterError",
    "StoreError",
    "StudyMismatchError",
    "GateFailedError",
    "StudyNotFoundError",
    "TrialStopped",
]


class SweeperError(Exception):
    """Root of every error sweeper raises on purpose."""

    exit_code = 1


class DefinitionError(SweeperError):
    """The study definition (YAML) is invalid. Holds every problem found, not just the first."""

    exit_code = 2

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"{source}: {len(problems)} {noun} in the study definition:\n{lines}")


class TaskError(SweeperError):
    """The user's task could not be imported, called, or does not return a usable Task."""

    exit_code = 2


class ClusterError(SweeperError):
    """The definition asks for resources the Ray cluster does not have (GPUs, CPUs)."""

    exit_code = 2


class StoreError(SweeperError):
    """The study store could not be opened or written."""


class StoreFaultError(StoreError):
    """The store cannot write for a reason only the user can fix (a full disk, a read-only
    file or folder): waiting or retrying does not help."""


class StoreUnreachableError(StoreError):
    """The store's server cannot be reached or refuses the login: checked before anything
    starts, so nothing is written."""

    exit_code = 2


class StudyNotFoundError(StoreError):
    """No study of that name in the store."""


class StudyMismatchError(SweeperError):
    """An existing study of the same name was created from a different search setup."""

    exit_code = 2


class GateFailedError(SweeperError):
    """The study gate found a broken training setup and the gate mode is strict."""

    exit_code = 3


class TrialStopped(Exception):  # noqa: N818 (a signal to the user's loop, like StopIteration)
    """Raised inside a trial's training code when it must stop: the pruner or a per-trial
    probe said so (from ``trial.report`` or from the hooks ``trial.watch`` installed). Let it
    propagate out of your ``fit`` function; sweeper records why the trial stopped."""

    def __init__(self, reason: str, pruned: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.pruned = pruned


class Terminated(KeyboardInterrupt):  # noqa: N818 (a signal, like KeyboardInterrupt)
    """SIGTERM reached the driver (Kubernetes, `ray job stop`, `kill`): the same graceful path
    as Ctrl-C. Running trials are failed with the reason and re-queued; exit code 143."""

    exit_code = 143


def catch_sigterm() -> None:
    """Turn SIGTERM into `Terminated` in the main thread (Ray's own handler, which `ray.init`
    installs, would exit at once and leave trials RUNNING). A second SIGTERM while the first
    is being handled is ignored: the exit is already under way."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def on_sigterm(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    signal.signal(signal.SIGTERM, on_sigterm)
