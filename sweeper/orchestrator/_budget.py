"""The search's budget: the study's counts, how many trials may start now, and why the run
stops early (a timeout, failures in a row, workers gone)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from optuna.trial import TrialState

from sweeper.definition import Definition
from sweeper.store import state_counts

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)
COUNT_S = 0.5  # how old the study's count of taken trials may be (other drivers' trials)


class Budget:
    """The one owner of the study's counts and of `stop_reason`. `budget.trials` counts the
    whole study (other drivers' finished and running trials too), so drivers sharing a study
    stop together; with `--trials N` (`quota`) this driver runs N of its own."""

    def __init__(
        self,
        spec: Definition,
        storage: Any,
        study_id: int,
        quota: int | None,
        db: Callable[..., Any],
    ) -> None:
        """`db`: the search's store call wrapper (rides out outages)."""
        self.spec = spec
        self.storage, self.study_id = storage, study_id
        self.quota = quota
        self._db = db
        self.ended_by: dict[str, int] = {}  # what ended this driver's unfinished trials
        self.counts = {s.name: 0 for s in TrialState}
        for state, n in state_counts(storage, study_id).items():
            self.counts[state.upper()] = n  # counted by the database, not by reading trials
        self.counts["RUNNING"] = 0
        self.start_finished = self.finished()
        self.own_finished = 0
        self.started_here = 0  # trials this driver started
        self.consecutive_failures = 0
        self.stop_reason = ""
        self.taken, self.counted_at = 0, -math.inf  # see `taken_now`
        self.waiting = 0  # the study's WAITING trials at the last count
        self.aim: int | None = int(spec.budget.trials)  # the round's target (see `round`)
        self.confirming = False
        self.t0 = time.perf_counter()  # budget.timeout_s counts from here: not the gate

    def finished(self) -> int:
        """Trials of the study finished (complete or pruned), as counted so far."""
        return sum(self.counts[s.name] for s in COUNTED)

    def round(self, target: int | None, confirming: bool) -> None:
        """A new round of the search: the study's trials finished or running it aims at (None:
        no such limit), and whether it only runs trials that wait (confirmation runs)."""
        self.aim, self.confirming = target, confirming
        self.counted_at = -math.inf

    def target(self) -> int:
        """The number of finished trials this run aims at."""
        if self.quota is not None:
            return self.start_finished + self.quota
        if self.aim is None:
            return self.finished() + self.waiting
        return self.aim

    def room(self, busy: int, slots: int) -> int:
        """How many new trials may start now, with `busy` of this driver's `slots` running."""
        if self.stop_reason:
            return 0
        timeout = self.spec.budget.timeout_s
        if timeout is not None and time.perf_counter() - self.t0 > timeout:
            self.stop_reason = f"wall-clock timeout of {timeout:g}s reached"
            return 0
        if self.confirming:  # only the runs that wait: a fresh ask would sample a new trial
            self.counted_at = -math.inf
            self.taken_now(slots)
            return self.waiting
        limits = []
        if self.quota is not None:
            limits.append(self.quota - self.own_finished - busy)
        if self.aim is not None:
            limits.append(self.aim - self.taken_now(slots))
        return min(limits) if limits else 0

    def taken_now(self, slots: int) -> int:
        """Trials of the whole study finished or running: counted by the database at most every
        COUNT_S (other drivers' trials), this driver's own starts added as they happen. Within
        one round of slots of the budget it is counted at every call: a trial another driver
        (or a cut-off ask) started since the last count would otherwise let this driver start
        one trial too many, and a re-queued trial would then be left WAITING at the end."""
        now = time.monotonic()
        near_end = self.aim is not None and self.aim - self.taken <= slots
        if near_end or now - self.counted_at >= COUNT_S:
            counts = self._db(state_counts, self.storage, self.study_id, what="counting trials")
            self.taken = sum(counts.get(s, 0) for s in ("complete", "pruned", "running"))
            self.waiting = counts.get("waiting", 0)
            self.counted_at = now
        return self.taken

    def started(self) -> None:
        """This driver started a trial."""
        self.taken += 1
        self.started_here += 1

    def recount(self) -> None:
        """A trial stopped counting (failed): count the study again at the next call."""
        self.counted_at = -math.inf

    def count(self, state: TrialState, note: str) -> None:
        """A trial of this driver ended in `state`; failures in a row stop the run."""
        self.counts[state.name] += 1
        if state != TrialState.COMPLETE and note:
            key = ended_by(note)
            self.ended_by[key] = self.ended_by.get(key, 0) + 1
        if state in COUNTED:
            self.own_finished += 1
        if state != TrialState.FAIL:
            self.consecutive_failures = 0
            return
        self.consecutive_failures += 1
        limit = self.spec.budget.max_consecutive_failures
        if self.consecutive_failures >= limit and not self.stop_reason:
            self.stop_reason = (
                f"{limit} trials failed in a row (last: {note}); fix the error, then run "
                "the same command to resume (budget.max_consecutive_failures sets the limit)"
            )


def ended_by(note: str) -> str:
    """What ended a trial, from its note: the probe that stopped it, "the pruner", the
    reason sweeper named (hang, crash) or the error's type."""
    text = note.removeprefix("stopped by probe: ")
    if text.startswith("pruned by the pruner"):
        return "the pruner"
    if text.startswith("the Ray worker running it died"):
        return "a lost worker"
    head = text.split(":", 1)[0].strip()
    return head if head and " " not in head else text[:60]
