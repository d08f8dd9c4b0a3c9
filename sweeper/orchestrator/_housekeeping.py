"""The search's housekeeping: heartbeats of the running trials, recovery of trials whose driver
died, and the stray trials a store outage left running."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState

from sweeper.orchestrator._recovery import recover, requeue
from sweeper.store import GRACE_S, HEARTBEAT_S, attrs, record_heartbeats, trials_in_states


class Housekeeping:
    """Keeps this driver's trials alive in the store and takes back the ones nobody runs."""

    def __init__(
        self,
        study: optuna.Study,
        storage: Any,
        me: str,
        db: Callable[..., Any],
        note: Callable[[str], None],
    ) -> None:
        """`me`: this driver's id; `db`: the search's store call wrapper; `note`: a line for
        the user."""
        self.study, self.storage, self.me = study, storage, me
        self._db, self._note = db, note
        self.last_heartbeat = 0.0
        self.last_recovery = time.monotonic()

    def tick(self, running: list[int]) -> None:
        """Now and then: the heartbeat of the `running` trial ids, and the recovery of trials
        whose heartbeat lapsed (another driver died)."""
        now = time.monotonic()
        if now - self.last_heartbeat >= HEARTBEAT_S / 2:
            self.last_heartbeat = now
            if running:
                self._db(record_heartbeats, self.storage, running, what="recording heartbeats")
        if now - self.last_recovery >= GRACE_S / 2:
            self.last_recovery = now
            self._recover()

    def _recover(self) -> bool:
        took = False
        for number, why in self._db(recover, self.study, self.me, what="checking trials"):
            self._note(f"trial {number} failed and re-queued: {why}")
            took = True
        return took

    def strays(self, mine: set[int]) -> bool:
        """Before the run ends: RUNNING trials no slot runs (`mine`: the trial ids the slots
        run). An ask whose answer a store outage cut off leaves a trial RUNNING that no driver
        claimed; the recovery fails and re-queues it once it is older than the grace period
        (until then it may be another driver's ask in flight), so the run waits for that
        instead of ending with a trial RUNNING and the study one trial short. True when a
        trial was taken back."""
        took, deadline = False, None
        while True:
            running = self._db(
                trials_in_states,
                self.storage,
                self.study._study_id,
                (TrialState.RUNNING,),
                what="looking for stray trials",
            )
            strays = [
                t
                for t in running
                if t._trial_id not in mine and t.system_attrs.get(attrs.DRIVER) in (None, self.me)
            ]
            if not strays:
                return took
            if deadline is None:
                numbers = ", ".join(str(t.number) for t in strays)
                self._note(
                    f"trial {numbers} was left running by an interrupted store call; taking "
                    f"it back (within {GRACE_S:.0f}s)"
                )
                deadline = time.monotonic() + GRACE_S + 30
            elif time.monotonic() > deadline:
                return took
            for t in strays:
                if t.system_attrs.get(attrs.DRIVER) == self.me:  # ours and in no slot: now
                    why = "this driver lost track of it in a store outage"
                    if self._db(requeue, self.study, t, why, what="re-queuing a trial"):
                        self._note(f"trial {t.number} failed and re-queued: {why}")
                        took = True
            took = self._recover() or took
            time.sleep(1.0)
