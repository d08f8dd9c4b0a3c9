"""The study gate in a thread of a runner actor: the driver polls it for the findings of each
probe as it ends, the probe running now, for how long and where in the user's code, so it
can show progress and name a probe that never returns."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sweeper._watchdog import thread_frame
from sweeper.orchestrator._records import GatePoll
from sweeper.probes import Finding, Report

# run(progress, starting) -> the report; progress(finding) as each probe ends, starting(name)
GateFn = Callable[[Callable[[Finding], None], Callable[[str], None]], Report]


class GateThread:
    """One gate run in a daemon thread, read by `poll`. `error_text` turns an exception of
    the gate's into the message the driver shows."""

    def __init__(self, run: GateFn, error_text: Callable[[BaseException], str]) -> None:
        """Start `run` at once."""
        self.findings: list[Finding] = []
        self.sent = 0
        self.running: str | None = None
        self.since = 0.0
        self.done: Report | None = None
        self.error: str | None = None

        def main() -> None:
            try:
                self.done = run(self.findings.append, self._starting)
            except Exception as e:
                self.error = error_text(e)

        self.thread = threading.Thread(target=main, name="sweeper-gate", daemon=True)
        self.thread.start()

    def _starting(self, name: str) -> None:
        self.running, self.since = name, time.monotonic()

    def poll(self, wait_s: float) -> GatePoll:
        """The findings since the last poll (waiting up to `wait_s` for one), the probe running
        now, for how long and where in the user's code, and the report (or error) once done."""
        deadline = time.monotonic() + wait_s
        while (
            time.monotonic() < deadline
            and self.done is None
            and self.error is None
            and len(self.findings) == self.sent
        ):
            time.sleep(0.05)
        done, error = self.done, self.error  # read before the findings: none is missed
        new = self.findings[self.sent :]
        self.sent += len(new)
        running = self.running
        return GatePoll(
            findings=new,
            running=running,
            seconds=time.monotonic() - self.since if running else 0.0,
            where=thread_frame(self.thread),
            done=done,
            error=error,
        )
