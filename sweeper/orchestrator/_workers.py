"""The runner actors of one run, and the one policy for a worker that dies under a call.

Ray restarts a runner whose process died (`max_restarts`), so a call that failed because its
worker died is followed by a fresh `load` on the same handle; calls made while the actor is
restarting wait for it. Only when Ray reports the actor DEAD for good (restarts used up, its
node gone) is a new actor made in its place, which Ray places wherever the cluster has room.
Every Ray call the driver makes goes through `get` (blocking: start-up) or `revive` (the
search loop, one epoch at a time; the gate, polled probe by probe), so start-up, the gate, a
trial's start, an epoch and the tell all meet the same rule. The gate adds one thing: a worker
that dies twice in the same probe is a crash in the task's code, named instead of retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sweeper._watchdog import Dump, read_dump

log = logging.getLogger("sweeper")
ATTEMPTS = 5  # a blocking call whose worker keeps dying is given up after this many tries


def actor_state(runner: Any) -> str | None:
    """Ray's state of the actor: ALIVE, RESTARTING, PENDING_CREATION, DEAD, or None when
    Ray cannot say (then it is treated as coming back)."""
    try:
        from ray._private import state

        info = state.actors(actor_id=runner._actor_id.hex())
        return str(info.get("State")) if info else None
    except Exception:
        return None


class Workers:
    """The runners of one run: made by `make`, revived or replaced by one rule."""

    def __init__(
        self,
        make: Callable[[], Any],
        n: int,
        note: Callable[[str], None],
        dumps: Path | None = None,
    ) -> None:
        """`dumps`: the folder the runners' watchdogs write to (see sweeper._watchdog)."""
        self.make = make
        self.note = note
        self.dumps = dumps
        self.runners = [make() for _ in range(n)]
        self.replaced = 0

    def last_words(self, runner: Any) -> Dump | None:
        """What the dead process of `runner` wrote before it died: a hang's or a crash's
        stacks with the user's frame, or None (killed from outside, its node lost, or on a
        node whose files the driver cannot read)."""
        try:
            key = runner._actor_id.hex()
        except AttributeError:
            return None
        return read_dump(self.dumps, key)

    def revive(self, runner: Any) -> Any:
        """After a call on `runner` failed because its worker died: the runner to use from
        now on (the same handle while Ray restarts it, a new actor once it is dead for
        good)."""
        import ray

        if actor_state(runner) != "DEAD":
            return runner
        try:
            ray.kill(runner, no_restart=True)
        except Exception:
            pass
        fresh = self.make()
        self.replaced += 1
        self.runners = [fresh if r is runner else r for r in self.runners]
        self.note(
            "a Ray worker was lost for good (its restarts were used up or its node left); "
            "a new one takes its place"
        )
        return fresh

    def get(self, i: int, method: str, *args: Any, what: str, ref: Any = None) -> Any:
        """Call `method(*args)` on runner `i` and wait for the answer (`ref`: the call if
        already made). A worker that dies under it is revived and the call made again."""
        import ray

        from sweeper.errors import SweeperError

        for attempt in range(ATTEMPTS):
            runner = self.runners[i]
            if ref is None:
                ref = getattr(runner, method).remote(*args)
            try:
                return ray.get(ref)
            except ray.exceptions.RayActorError as e:
                log.debug("worker died while %s: %s", what, type(e).__name__)
                self.revive(runner)
                ref = None
                time.sleep(min(0.25 * 2**attempt, 2.0))
        raise SweeperError(
            f"the Ray worker {what} died {ATTEMPTS} times in a row; check the workers' memory "
            "(`ray status`) and the task, then run the same command again"
        )

    def kill_all(self) -> None:
        """Give the CPUs/GPUs back now, not when the handles are garbage-collected."""
        import ray

        for runner in self.runners:
            try:
                ray.kill(runner, no_restart=True)
            except Exception:
                pass
        if self.dumps is not None and self.dumps.is_dir():  # the empty files of live workers
            for path in self.dumps.glob("runner-*.txt"):
                try:
                    if path.stat().st_size == 0:
                        path.unlink()
                except OSError:
                    pass
            for folder in (self.dumps, self.dumps.parent):  # nothing to read: nothing left
                try:
                    folder.rmdir()
                except OSError:
                    break
