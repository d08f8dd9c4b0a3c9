"""The study as the driver reads it: one snapshot, not a query per call.

Optuna's cached storage re-reads every running trial from the database on each call that
lists trials: `ask()` looking for WAITING trials, TPE with constant liar at every ask, the
median pruner at every epoch. With 32 trials running each call rebuilt 32 trials from SQL, and
at 32 slots of 0.5 s epochs that was most of the driver's time (BENCHMARKS §9). Here the study's
storage is wrapped so that every listing (the sampler's, the pruner's, `ask()`'s) reads one
snapshot of the study:
- this driver's own trials are exact: a trial is in it as soon as it is asked (constant liar
  sees it at once), with its reports as they are made, and finished as soon as it is told;
- other drivers' trials are at most `every` seconds old (a new snapshot is taken then);
- a trial enqueued from here (a re-queue) is in the next listing, and a trial this driver
  finished outside a tell (failed and re-queued) makes the next listing a new snapshot.
With one driver the sampler and the pruner therefore see exactly what Optuna's own storage
would show them, and propose and prune the same (tested); every other store call goes to
Optuna's storage unchanged.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Container
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeper.search._window import WindowSampler


class StudyView:
    """A stand-in for the study's storage (`study._storage`), answering trial listings of the
    study from the snapshot and passing everything else through."""

    def __init__(self, storage: Any, study_id: int, every: float = 0.5) -> None:
        self._storage = storage
        self._study_id = study_id
        self._every = every
        self._at = -float("inf")
        self._trials: list[FrozenTrial | None] = []  # by trial number
        self._own: dict[int, FrozenTrial] = {}  # this driver's running trials, by id
        self._listing: list[FrozenTrial] | None = None
        self._keep: Callable[[FrozenTrial], bool] | None = None
        self.reads = 0  # snapshots taken (for the tests and the benchmarks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)

    # -- what the driver tells the view --------------------------------------------------------
    def running(self, trial: FrozenTrial) -> None:
        """One of this driver's trials was asked. `trial` is the Optuna trial's own frozen
        copy (`trial._cached_frozen_trial`), which its reports update in place."""
        self._own[trial._trial_id] = trial
        self._place(trial)

    def done(self, trial_id: int, told: FrozenTrial | None = None) -> None:
        """One of this driver's trials finished: `told` is what `study.tell` returned. Without
        it (failed and re-queued outside a tell), the next listing is a new snapshot."""
        if self._own.pop(trial_id, None) is None:
            return
        if told is not None and told.state.is_finished():
            self._place(told)
        else:
            self._at = -float("inf")

    def _place(self, trial: FrozenTrial) -> None:
        n = trial.number
        if n >= len(self._trials):
            self._trials.extend([None] * (n + 1 - len(self._trials)))
        self._trials[n] = trial
        self._listing = None

    def only(self, keep: Callable[[FrozenTrial], bool] | None) -> None:
        """List only the trials `keep` accepts (and every WAITING one, which `ask()` must
        find): a stage's sampler and pruner see that stage's trials. None: every trial."""
        self._keep, self._listing = keep, None

    # -- the listing ---------------------------------------------------------------------------
    def _snapshot(self) -> list[FrozenTrial]:
        now = time.monotonic()
        if now - self._at >= self._every:
            fresh = self._storage.get_all_trials(self._study_id, deepcopy=False)
            self._trials = []
            for t in fresh:
                if t._trial_id not in self._own:
                    self._place(t)
            for t in self._own.values():
                self._place(t)
            self._at, self._listing = now, None
            self.reads += 1
        if self._listing is None:
            keep = self._keep
            self._listing = [
                t
                for t in self._trials
                if t is not None and (keep is None or t.state == TrialState.WAITING or keep(t))
            ]
        return self._listing

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        """The study's trials from one snapshot (re-read when stale), not a query per call."""
        if study_id != self._study_id:
            return list(self._storage.get_all_trials(study_id, deepcopy=deepcopy, states=states))
        trials = self._snapshot()
        if states is not None:
            trials = [t for t in trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else list(trials)

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        """A new trial in the store; an enqueued one makes the next listing re-read."""
        trial_id = self._storage.create_new_trial(study_id, template_trial)
        if template_trial is not None:  # enqueued or added: in the next listing
            self._at = -float("inf")
        return int(trial_id)


def read_through(study: optuna.Study, every: float = 0.5, window: int | None = None) -> StudyView:
    """Make `study` list its trials from a `StudyView` (sampler, pruner and `ask()` alike);
    with `window`, the sampler sees only that window of it (`sampler: {window: N}`)."""
    view = StudyView(study._storage, study._study_id, every)
    study._storage = view  # type: ignore[assignment]
    if window is not None:
        study.sampler = WindowSampler(study.sampler, window)
    return view


def read_ahead(study: optuna.Study) -> threading.Thread:
    """Read the study's trials into Optuna's cache in a thread while the runners start and the
    gate runs, so a resumed study's first ask reads only what changed since (BENCHMARKS §4: a
    10,000-trial study takes about a second to read). A store error here is left to the
    driver's own first read, which rides it out or reports it."""

    storage = study._storage  # Optuna's cached storage itself: never the view, which the
    # driver may install meanwhile and which is not shared between threads

    def read() -> None:
        try:
            storage.get_all_trials(study._study_id, deepcopy=False)
        except Exception:
            pass

    thread = threading.Thread(target=read, name="sweeper-read-ahead", daemon=True)
    thread.start()
    return thread
