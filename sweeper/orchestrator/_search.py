"""The search loop: ask -> run on a Ray actor, one epoch per call -> report/prune -> tell.

Scheduling lives here (launch, wait, handle a runner's answer, revive a lost worker). What it
hands off, each to one owner: the budget and the counts (`_budget.py`), recording results
(`_recording.py`), resume bookkeeping (`_resume.py`), heartbeats and stray trials
(`_housekeeping.py`). Everything that touches the study store happens in the driver: runners
never write to it, so a runner may live on a node that cannot reach the store. Every store
call goes through `_db`, which rides out a store outage (a restarted PostgreSQL) instead of
losing the study.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from sweeper._watchdog import Dump
from sweeper.definition import Definition
from sweeper.errors import Terminated
from sweeper.orchestrator._budget import Budget
from sweeper.orchestrator._housekeeping import Housekeeping
from sweeper.orchestrator._recording import Outcome, Progress, Recorder
from sweeper.orchestrator._records import TrialUpdate
from sweeper.orchestrator._recovery import requeue
from sweeper.orchestrator._resume import Resumes
from sweeper.orchestrator._retention import Retention
from sweeper.orchestrator._rounds import NOT_NEEDED, Round, next_round
from sweeper.orchestrator._slots import Phase, Slot
from sweeper.orchestrator._warnings import StudyWarnings
from sweeper.probes import Report
from sweeper.search import distributions, read_through, should_prune
from sweeper.store import attrs, first_line, retrying, set_trial_attrs

T = TypeVar("T")
REVIVE_S = 120.0  # how long to wait for a dead worker to come back when no other can run
REVIVES = 8  # failed revive calls in a row before a slot is given up


class Search:
    """The search loop of one driver: asks Optuna for trials, runs them on the runner actors an
    epoch at a time, prunes, revives lost workers and stops at the budget."""

    def __init__(
        self,
        study: optuna.Study,
        spec: Definition,
        fixed: dict[str, Any],
        workers: Any,
        progress: Progress | None,
        t0: float,
        me: str,
        quota: int | None = None,
        checkpoints: Any = None,
    ) -> None:
        """`checkpoints`: the study's sweeper.checkpoint.Checkpoints, or None when the
        definition keeps neither checkpoints nor weights."""
        self.study = study
        self.storage: Any = study._storage
        self.spec = spec
        self.fixed = fixed
        self.dists = distributions(spec.search)  # the round's (a later stage's: narrowed)
        self.workers = workers  # orchestrator._workers.Workers: one policy for dead workers
        self.slots = [Slot(r) for r in workers.runners]
        self.progress = progress
        self.t0 = t0
        self.budget = Budget(spec, self.storage, study._study_id, quota, self._db)
        self.reports: list[Slot] = []  # slots whose epoch's report is not written yet
        # the sampler, the pruner and ask() list trials from one snapshot, not a query per call
        self.view = read_through(study, window=spec.sampler.window)
        self.sampler = study.sampler  # a stage's narrowed categoricals wrap it (see `_enter`)
        self.round: Round | None = None
        self.quota = quota
        self.warnings = StudyWarnings(self._note)
        self.retention: Retention | None = None
        self.resumes: Resumes | None = None
        if checkpoints is not None:
            self.retention = Retention(
                self.storage,
                study._study_id,
                checkpoints,
                spec.checkpoint.keep_best,
                spec.objective.direction == "maximize",
                self._db,
                spec.maximized(),
            )
            self.resumes = Resumes(self.storage, self.retention, self._db, self._note)
        self.recorder = Recorder(
            study, spec, self.budget, self.view, self.retention, self._db, progress
        )
        self.housekeeping = Housekeeping(study, self.storage, me, self._db, self._note)
        self.me = me

    def _db(self, fn: Callable[..., T], *args: Any, what: str, **kwargs: Any) -> T:
        return retrying(fn, *args, what=what, on_outage=self._note, **kwargs)

    def _note(self, text: str) -> None:
        if self.progress is not None:
            self.progress.note(text)

    def _busy(self) -> list[Slot]:
        return [s for s in self.slots if s.busy]

    # -- the rounds --------------------------------------------------------------------------
    def loop(self) -> None:
        """Run the study's rounds (its stages, then the confirmation runs) until the budget is
        met or the study is stopped; what round comes next is read from the store each time."""
        ran: set[tuple[str, int]] = set()
        while not self.budget.stop_reason:
            if self.quota is not None and self.budget.own_finished >= self.quota:
                break
            # read from the store itself: the view shows only the last round's trials
            quota = self.quota is not None
            rnd = self._db(next_round, self.study, self.spec, quota, self.storage, what="a round")
            if rnd is None:
                break
            mark = (rnd.name, self.budget.started_here)
            if mark in ran:
                break  # the round started nothing new: what is left waits on other drivers
            ran.add(mark)
            self._enter(rnd)
            self._run_round()

    def _enter(self, rnd: Round) -> None:
        """Make `rnd` the round: its space, what its sampler and pruner see, its target."""
        if (self.round is None or self.round.name != rnd.name) and rnd.name != "search":
            # a plain search needs no heading (the trials' lines follow); stages and the
            # confirmation are named
            self._note(f"{rnd.name}: {rnd.epochs} epochs per trial" if rnd.stage else rnd.name)
        for text in rnd.notes:
            self._note(text)
        self.round, self.dists = rnd, rnd.dists
        rnd.install(self.study, self.view, self.sampler, self.spec.sampler.seed)
        self.budget.round(rnd.target, rnd.confirm)

    # -- the loop ----------------------------------------------------------------------------
    def _run_round(self) -> None:
        """Run the round's trials until its target is met (or the study is stopped), one runner
        slot each."""
        import ray

        revive_since: float | None = None
        try:
            while True:
                room = self.budget.room(len(self._busy()), len(self.slots))
                for slot in self.slots:
                    if room > 0 and not slot.busy and slot.ref is None:
                        self._launch(slot)
                        room -= 1
                if not self._busy() and (room <= 0 or not self.slots):
                    mine = {s.trial._trial_id for s in self._busy() if s.trial is not None}
                    if self.slots and self.housekeeping.strays(mine):
                        continue  # a trial the store lost track of was taken back: go on
                    break
                pending = {s.ref: s for s in self.slots if s.ref is not None}
                if not self._busy():
                    # only workers that are restarting: wait for them, but not forever
                    revive_since = revive_since or time.monotonic()
                    if time.monotonic() - revive_since > REVIVE_S:
                        self.budget.stop_reason = (
                            f"no Ray worker came back within {REVIVE_S:.0f}s after workers "
                            "died (did nodes leave the cluster?); add capacity and run the "
                            "same command again to resume"
                        )
                        break
                else:
                    revive_since = None
                if not pending:
                    break
                ready, rest = ray.wait(list(pending), num_returns=1, timeout=1.0)
                if ready and rest:  # everything else that is ready: its reports go together
                    more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                    ready += more
                for ref in ready:
                    self._handle(pending[ref], ref)
                self._flush_reports()
                self._tick()
        except BaseException as e:
            if isinstance(e, Terminated):
                why = "the driver received SIGTERM"
            elif isinstance(e, KeyboardInterrupt):
                why = "the driver was interrupted (KeyboardInterrupt)"
            else:
                why = f"the driver stopped: {first_line(e)}"
            self.recorder.abandon(self._busy(), why)
            raise
        for slot in self.slots:
            if slot.phase is Phase.REVIVE:
                ray.kill(slot.runner, no_restart=True)

    def _tick(self) -> None:
        self.housekeeping.tick([s.trial._trial_id for s in self._busy() if s.trial is not None])
        if self.progress:
            counts = {k.lower(): v for k, v in self.budget.counts.items() if k != "WAITING"}
            counts["running"] = len(self._busy())
            elapsed = time.perf_counter() - self.t0
            self.progress.tick(counts, self.recorder.best, elapsed, self.budget.target())

    def _launch(self, slot: Slot) -> None:
        assert self.round is not None
        trial = self._db(self.study.ask, self.dists, what="asking for a trial")
        self.budget.started()
        given = trial.user_attrs  # an enqueued trial's: its stage, the trial it confirms
        marks = self.round.marks(given)
        self._db(
            set_trial_attrs,
            self.storage,
            trial._trial_id,
            marks,
            system={attrs.DRIVER: self.me},
            heartbeat=True,
            what="recording the trial's driver",
        )
        frozen = getattr(trial, "_cached_frozen_trial", None)
        if frozen is None:
            frozen = self._db(self.storage.get_trial, trial._trial_id, what="reading a trial")
        frozen.user_attrs.update(marks)
        self.view.running(frozen)  # the next ask sees it running at once (constant liar)
        if self.round.confirm and not given:
            # another driver took the last waiting run first: this ask made a new trial
            self.recorder.drop(trial, NOT_NEEDED)  # not counted
            return
        params = {**self.fixed, **trial.params}
        epochs = self.round.epochs_of(given, self.spec)
        slot.take(trial, params, epochs, prune=attrs.CONFIRMS not in given)
        resume = self.resumes.inherit(slot, trial) if self.resumes is not None else None
        # the first epoch runs in the same call: one round trip fewer per trial
        slot.ref = slot.runner.start.remote(trial.number, params, epochs, True, resume)
        slot.phase = Phase.START

    def _handle(self, slot: Slot, ref: Any) -> None:
        import ray

        slot.ref = None
        try:
            result = ray.get(ref)
        except ray.exceptions.RayActorError as e:
            self._worker_died(slot, e)
            return
        except ray.exceptions.RayError as e:
            if slot.trial is not None:
                self.recorder.fail(slot, f"{type(e).__name__}: {e}")
            return
        if slot.phase is Phase.REVIVE:
            slot.phase, slot.revives = Phase.IDLE, 0
            if result.error is not None:  # the restarted worker cannot load the task any more
                self.slots.remove(slot)
                self._note(f"a restarted Ray worker could not load the task: {result.error}")
            return
        assert slot.trial is not None
        try:
            self._result(slot, result)
        except UpdateFinishedTrialError:
            self.recorder.taken_over(slot)

    def _result(self, slot: Slot, result: TrialUpdate) -> None:
        assert slot.trial is not None
        slot.findings.extend(result.findings)
        self.warnings.see(slot.trial.number, result.findings)
        for text in result.notes:
            self._note(f"trial {slot.trial.number}: {text}")
        if result.resumed_epoch is not None:
            assert self.resumes is not None
            self.resumes.resumed(slot, result.resumed_epoch)
        elif slot.resume is not None and result.notes:
            slot.checkpoints = []  # none of the inherited checkpoints loaded: a fresh start
        if self.resumes is not None:
            for entry in result.saved:
                self.resumes.saved(slot, entry)
        if result.checkpoint_seconds is not None:
            slot.checkpoint_seconds = result.checkpoint_seconds
        if result.rss_mb is not None:
            slot.peak_mb = max(slot.peak_mb, result.rss_mb)
        if result.probe_seconds is not None:
            slot.probe_seconds = max(slot.probe_seconds, result.probe_seconds)
        if result.worker is not None:
            self._db(
                self.storage.set_trial_user_attr,
                slot.trial._trial_id,
                attrs.WORKER,
                result.worker.to_dict(),
                what="recording the trial's worker",
            )
        if result.error is not None:
            self.recorder.fail(slot, result.error)
        elif result.stopped is not None:
            self.recorder.prune(slot, f"stopped by probe: {result.stopped}", probed=True)
        elif result.metrics is not None:
            slot.phase = Phase.EPOCH
            self._epoch_done(slot, result.metrics)
        elif result.done:
            self._returned_early(slot)
        else:
            slot.ref, slot.phase = slot.runner.epoch.remote(), Phase.EPOCH

    def _worker_died(self, slot: Slot, error: Exception) -> None:
        """The actor's process died (killed, out of host memory, its node left). Ray restarts
        the actor (elsewhere if the node is gone); the trial is failed and re-queued with the
        same params, and the slot waits for its worker to come back."""
        import ray

        if slot.trial is not None:
            self._trial_died(slot, error, self.workers.last_words(slot.runner))
        if slot.phase is Phase.REVIVE:
            slot.revives += 1
            if slot.revives > REVIVES:
                self.slots.remove(slot)
                self._note(
                    f"a Ray worker failed to come back {REVIVES} times; going on with the others"
                )
                if not self.slots:
                    self.budget.stop_reason = (
                        "every Ray worker died; run the same command to resume"
                    )
                return
            time.sleep(min(0.1 * 2**slot.revives, 2.0))  # let Ray see the death first
        # the same handle while Ray restarts the actor, a new actor once it is dead for good
        slot.runner = self.workers.revive(slot.runner)
        try:
            slot.ref, slot.phase = slot.runner.load.remote(), Phase.REVIVE
        except ray.exceptions.RayActorError:
            slot.ref, slot.phase = None, Phase.REVIVE
            self._worker_died(slot, error)

    def _trial_died(self, slot: Slot, error: Exception, dump: Dump | None) -> None:
        """The process running the slot's trial died. A hang (the watchdog ended it) fails
        the trial; so does a crash of the same params a second time. A crash seen once, or a
        death with no last words (killed from outside, a lost node), re-queues the params."""
        assert slot.trial is not None
        trial = self._db(self.storage.get_trial, slot.trial._trial_id, what="reading a trial")
        before = trial.user_attrs.get(attrs.CRASHED)
        if dump is not None and (dump.kind == "hang" or before):
            reason = "hang" if dump.kind == "hang" else "crash"
            again = ""
            if reason == "crash":
                earlier = trial.user_attrs.get(attrs.RETRY_OF)
                again = f"; trial {earlier} with the same params died before: {before}"
            stacks = f"every thread's stack: {dump.path}"
            text = f"{reason}: {dump.describe()}{again}{_fix(reason)}; {stacks}"
            self.recorder.fail(slot, text, reason=reason)
            return
        if dump is not None:
            why = f"the Ray worker running it died: {dump.describe()} (stacks: {dump.path})"
            marks = {attrs.CRASHED: dump.describe()}
        else:
            why, marks = f"the Ray worker running it died ({type(error).__name__}", None
            text = str(error).lower()
            if "running low on memory" in text or "memory monitor" in text:
                why += ": Ray's memory monitor killed it, the node was low on memory"
            if slot.peak_mb:
                why += f"; it held {slot.peak_mb:.0f} MB at its last report"
            why += ")"
        if self._db(requeue, self.study, trial, why, marks=marks, what="re-queuing a trial"):
            self.recorder.count(slot, TrialState.FAIL, None, why + "; re-queued")
        self.recorder.release(slot)

    def _returned_early(self, slot: Slot) -> None:
        """The trial's fit function returned before its epochs' reports: it is complete
        with the last value it reported, or failed if it reported none."""
        if slot.value is None:
            self.recorder.fail(
                slot,
                "the task's fit function returned without calling trial.report(metrics); "
                f"report the metrics once per epoch ({slot.epochs} epochs)",
            )
        else:
            self.recorder.finish(slot, TrialState.COMPLETE, slot.value, "")

    def _epoch_done(self, slot: Slot, metrics: dict[str, float]) -> None:
        assert slot.trial is not None
        metric = self.spec.objective.metric
        value = metrics.get(metric)
        if value is None:
            # every trial would fail the same way: stop starting new ones
            why = (
                f"objective.metric {metric!r} is not among the metrics this task reports "
                f"({sorted(metrics)}); set objective.metric to one of them, or return it from "
                "the task's metrics hook or trial.report"
            )
            self.budget.stop_reason = self.budget.stop_reason or why
            self.recorder.fail(slot, why)
            return
        if not math.isfinite(value):
            msg = f"{metric} became {value} at epoch {slot.epoch}"
            self.recorder.prune(slot, msg, probed=True)
            return
        slot.metrics, slot.value = metrics, value
        self.reports.append(slot)  # written with the others of this loop turn, then judged

    def _flush_reports(self) -> None:
        """Write the epochs reported in this loop turn in one transaction, then decide each
        trial's next step (finish, prune or train on): the pruner sees every report."""
        slots, self.reports = self.reports, []
        if not slots:
            return
        finished = self.recorder.write_reports(slots)
        for slot in slots:
            assert slot.trial is not None
            if slot.trial._trial_id in finished:
                self.recorder.taken_over(slot)
                continue
            try:
                self._judge(slot)
            except UpdateFinishedTrialError:
                self.recorder.taken_over(slot)

    def _judge(self, slot: Slot) -> None:
        """After an epoch's report: the trial completes, is pruned or trains another epoch."""
        assert slot.trial is not None and slot.value is not None
        value = slot.value
        slot.epoch += 1
        if slot.epoch >= slot.epochs:
            self.recorder.finish(slot, TrialState.COMPLETE, value, "")
        elif (
            slot.prune
            and self.spec.pruner.type != "none"
            and self._db(
                should_prune,
                self.study,
                slot.trial,
                self.spec.objective.direction,
                what="asking the pruner",
            )
        ):
            reason = f"{attrs.BY_PRUNER} at epoch {slot.epoch}"
            self.recorder.finish(slot, TrialState.PRUNED, None, reason)
        else:
            slot.ref, slot.phase = slot.runner.epoch.remote(), Phase.EPOCH

    def outcome(self, gate: Report | None) -> Outcome:
        """The run's outcome, with the gate report it started from."""
        self.view.only(None)  # the ranking reads every trial, not the last round's
        return self.recorder.outcome(gate, self.fixed, self.t0)


def _fix(reason: str) -> str:
    """What to do about a trial that hung or crashed."""
    if reason == "hang":
        return (
            ". The line named is where the training code waited: a forward, a DataLoader "
            "worker or a collective that never returns. Fix it there, or raise "
            "probes.watchdog_s for steps this slow"
        )
    return (
        ". A crash in native code (an extension, a custom kernel) or an exit the task "
        "calls itself: run the task's fit or forward alone to reproduce it"
    )
