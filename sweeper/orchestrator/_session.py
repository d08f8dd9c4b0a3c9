"""One trial's training code running in a thread of the runner, handed to the driver one
report at a time.

The trial's function (sweeper's own loop or the user's `fit`) runs undisturbed in its thread;
`trial.report(metrics)` hands the metrics over and blocks until the driver says to go on
(`resume`) or to stop (`stop`: the report raises TrialStopped). So the driver still sees one
Ray call per epoch and decides about pruning between epochs, whoever wrote the loop.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sweeper import _watchdog as watchdog
from sweeper.errors import TrialStopped

_GO, _STOP = "go", "stop"


@dataclass
class Event:
    """What the trial did next: "report" (metrics), "done" (its function returned),
    "stopped" (a probe or the driver stopped it: reason) or "error" (it raised: error)."""

    kind: str
    metrics: dict[str, float] | None = None
    reason: str = ""
    error: BaseException | None = None


class Session:
    """A trial's training code run in a thread, handing control back at each report, so the runner
    trains one epoch per call and can stop it between epochs."""

    def __init__(
        self,
        fn: Callable[..., Any],
        params: dict[str, Any],
        make_trial: Callable[[Callable[[dict[str, float]], None]], Any],
        stopped: Callable[[], str | None] = lambda: None,
    ) -> None:
        """`make_trial(reporter)` builds the trial handle whose `report` calls `reporter`;
        `stopped()` says whether a probe has stopped the trial (in case the user's code
        caught the TrialStopped its hook raised)."""
        self._out: queue.Queue[Event] = queue.Queue()
        self._in: queue.Queue[str] = queue.Queue()
        self._stopped = stopped
        self._started = False
        self.trial = make_trial(self._report)
        self._thread = threading.Thread(
            target=self._main, args=(fn, params), name="sweeper-trial", daemon=True
        )

    # -- in the trial's thread ---------------------------------------------------------------
    def _main(self, fn: Callable[..., Any], params: dict[str, Any]) -> None:
        try:
            fn(dict(params), self.trial)
            reason = self._stopped()
            self._out.put(Event("stopped", reason=reason) if reason else Event("done"))
        except TrialStopped as e:
            self._out.put(Event("stopped", reason=self._stopped() or e.reason))
        except BaseException as e:  # the trial's failure, reported to the driver as a value
            self._out.put(Event("error", error=e))
        finally:
            self.trial.close()

    def _report(self, metrics: dict[str, float]) -> None:
        reason = self._stopped()
        if reason:  # a probe stopped it, but the user's code went on
            raise TrialStopped(reason)
        watchdog.pause()  # waiting on the driver is not the user's code going silent
        self._out.put(Event("report", metrics=metrics))
        go = self._in.get()
        watchdog.beat()
        if go == _STOP:
            raise TrialStopped("the driver ended the trial", pruned=True)

    # -- in the runner's thread --------------------------------------------------------------
    def start(self) -> Event:
        """Start the trial; returns its first event."""
        self._started = True
        self._thread.start()
        return self._out.get()

    def resume(self) -> Event:
        """Let the trial go on past its last report (or start it); returns its next event."""
        if not self._started:
            return self.start()
        if not self._thread.is_alive():
            return Event("error", error=RuntimeError("the trial's code is no longer running"))
        self._in.put(_GO)
        return self._out.get()

    def stop(self, timeout: float = 60.0) -> bool:
        """End the trial (its pending report raises TrialStopped) and wait for its thread.
        False if the thread is still running after `timeout` (code that ignores the stop)."""
        if self._thread.is_alive():
            self._in.put(_STOP)
            self._thread.join(timeout)
        return not self._thread.is_alive()
