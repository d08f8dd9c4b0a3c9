"""The search loop: ask -> run on a Ray actor, one epoch per call -> report/prune -> tell.

Everything that touches the study store happens here, in the driver: runners never write to
it, so a runner may live on a node that cannot reach the store. Every store call goes through
`_db`, which rides out a store outage (a restarted PostgreSQL) instead of losing the study.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from sweeper.errors import Terminated
from sweeper.orchestrator._records import TrialUpdate
from sweeper.orchestrator._recovery import recover, requeue
from sweeper.orchestrator._retention import Retention
from sweeper.orchestrator._warnings import StudyWarnings
from sweeper.report import trial_summary
from sweeper.search import distributions
from sweeper.search._view import read_through
from sweeper.store import attrs
from sweeper.store._bulk import record_heartbeats, record_reports, set_trial_attrs
from sweeper.store._retry import first_line, retrying
from sweeper.store._storage import GRACE_S, HEARTBEAT_S, state_counts, trials_in_states

T = TypeVar("T")
log = logging.getLogger("sweeper")
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)
BUILTIN_METRICS = {"train_loss", "val_loss", "val_accuracy"}
REVIVE_S = 120.0  # how long to wait for a dead worker to come back when no other can run
REVIVES = 8  # failed revive calls in a row before a slot is given up
COUNT_S = 0.5  # how old the study's count of taken trials may be (other drivers' trials)


class Progress(Protocol):
    """What the search reports to while it runs (the console display, or nothing)."""

    def gate_done(self, report: dict[str, Any]) -> None:
        """The gate's report, once it has run."""

    def note(self, text: str) -> None:
        """One line for the user: a recovered trial, a worker lost, a warning."""

    def trial_done(
        self, number: int, state: str, value: float | None, params: dict[str, Any], note: str
    ) -> None:
        """A trial finished: its state, value, params and why it stopped."""

    def tick(self, counts: dict[str, int], best: float | None, elapsed: float, target: int) -> None:
        """The study's counts, best value and elapsed time, now and then."""


@dataclass
class Outcome:
    """What a `sweeper run` ended with: the counts, the best trial, the gate and why it stopped
    early."""

    study_name: str
    storage: str
    counts: dict[str, int]
    best_value: float | None
    best_params: dict[str, Any] | None
    best_number: int | None
    elapsed_s: float
    gate: dict[str, Any] | None
    stopped_reason: str = ""
    probe_seconds_saved: float = 0.0


@dataclass
class _Slot:
    """One runner actor and the trial it is running, if any."""

    runner: Any
    trial: optuna.Trial | None = None
    params: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    ref: Any = None  # the pending call on the runner
    phase: str = ""  # "start" | "epoch" | "revive" (waiting for a restarted worker)
    started: float = 0.0
    findings: list[dict[str, Any]] = field(default_factory=list)
    probe_seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)  # the last epoch's, all of them
    value: float | None = None  # the objective's last reported value
    checkpoints: list[dict[str, Any]] = field(default_factory=list)  # newest first
    weights: str | None = None  # artifact id of the final weights the runner wrote
    chain: list[int] = field(default_factory=list)  # earlier runs this trial continues
    resume: dict[str, Any] | None = None
    checkpoint_seconds: float = 0.0
    revives: int = 0  # revive calls that failed in a row


class Search:
    """The search loop of one driver: asks Optuna for trials, runs them on the runner actors an
    epoch at a time, prunes, records results, revives lost workers and stops at the budget."""

    def __init__(
        self,
        study: optuna.Study,
        spec: Any,
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
        self.dists = distributions(spec.search)
        self.workers = workers  # orchestrator._workers.Workers: one policy for dead workers
        self.slots = [_Slot(r) for r in workers.runners]
        self.progress = progress
        self.t0 = t0
        self.search_t0 = time.perf_counter()  # budget.timeout_s counts from here: not the gate
        self.me = me
        self.quota = quota  # this driver's own number of finished trials (`run --trials N`)
        self.counts = {s.name: 0 for s in TrialState}
        for state, n in state_counts(self.storage, study._study_id).items():
            self.counts[state.upper()] = n  # counted by the database, not by reading trials
        self.counts["RUNNING"] = 0
        self.start_finished = self._finished()
        self.own_finished = 0
        self.consecutive_failures = 0
        self.stop_reason = ""
        self.last_heartbeat = 0.0
        self.last_recovery = time.monotonic()
        self.taken, self.counted_at = 0, -float("inf")  # see _taken
        self.saved_seconds = 0.0
        self.reports: list[_Slot] = []  # slots whose epoch's report is not written yet
        self.best: float | None = self._best_value()
        # the sampler, the pruner and ask() list trials from one snapshot, not a query per call
        self.view = read_through(study, window=spec.sampler.window)
        self.outage_noted = False
        self.warnings = StudyWarnings(self._note)
        self.retention: Retention | None = None
        if checkpoints is not None:
            self.retention = Retention(
                self.storage,
                study._study_id,
                checkpoints,
                spec.checkpoint.keep_best,
                spec.objective.direction == "maximize",
                self._db,
            )

    # -- store access ------------------------------------------------------------------------
    def _db(self, fn: Callable[..., T], *args: Any, what: str, **kwargs: Any) -> T:
        return retrying(fn, *args, what=what, on_outage=self._note, **kwargs)

    def _note(self, text: str) -> None:
        if self.progress is not None:
            self.progress.note(text)

    # -- bookkeeping -------------------------------------------------------------------------
    def _best_value(self) -> float | None:
        try:
            return float(self.study.best_value)
        except ValueError:
            return None

    def _finished(self) -> int:
        return sum(self.counts[s.name] for s in COUNTED)

    def _busy(self) -> list[_Slot]:
        return [s for s in self.slots if s.trial is not None]

    def _target(self) -> int:
        if self.quota is not None:
            return self.start_finished + self.quota
        return int(self.spec.budget.trials)

    def _room(self) -> int:
        """How many new trials may start now. The budget counts the whole study (other
        drivers' finished and running trials too), so drivers sharing a study stop together
        at `budget.trials`; with `--trials N` this driver runs N of its own."""
        if self.stop_reason:
            return 0
        timeout = self.spec.budget.timeout_s
        if timeout is not None and time.perf_counter() - self.search_t0 > timeout:
            self.stop_reason = f"wall-clock timeout of {timeout:g}s reached"
            return 0
        if self.quota is not None:
            return self.quota - self.own_finished - len(self._busy())
        return int(self.spec.budget.trials) - self._taken()

    def _taken(self) -> int:
        """Trials of the whole study finished or running: counted by the database at most every
        COUNT_S (other drivers' trials), this driver's own starts added as they happen. Within
        one round of slots of the budget it is counted at every call: a trial another driver
        (or a cut-off ask) started since the last count would otherwise let this driver start
        one trial too many, and a re-queued trial would then be left WAITING at the end."""
        now = time.monotonic()
        near_end = int(self.spec.budget.trials) - self.taken <= len(self.slots)
        if near_end or now - self.counted_at >= COUNT_S:
            counts = self._db(
                state_counts, self.storage, self.study._study_id, what="counting trials"
            )
            self.taken = sum(counts.get(s, 0) for s in ("complete", "pruned", "running"))
            self.counted_at = now
        return self.taken

    # -- the loop ----------------------------------------------------------------------------
    def loop(self) -> None:
        """Run trials until the budget is met (or the study is stopped), one runner slot each."""
        import ray

        revive_since: float | None = None
        try:
            while True:
                room = self._room()
                for slot in self.slots:
                    if room > 0 and slot.trial is None and slot.ref is None:
                        self._launch(slot)
                        room -= 1
                if not self._busy() and (room <= 0 or not self.slots):
                    if self.slots and self._strays():
                        continue  # a trial the store lost track of was taken back: go on
                    break
                pending = {s.ref: s for s in self.slots if s.ref is not None}
                if not self._busy():
                    # only workers that are restarting: wait for them, but not forever
                    revive_since = revive_since or time.monotonic()
                    if time.monotonic() - revive_since > REVIVE_S:
                        self.stop_reason = (
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
                self._housekeeping()
        except BaseException as e:
            if isinstance(e, Terminated):
                why = "the driver received SIGTERM"
            elif isinstance(e, KeyboardInterrupt):
                why = "the driver was interrupted (KeyboardInterrupt)"
            else:
                why = f"the driver stopped: {first_line(e)}"
            self._abandon(why)
            raise
        for slot in self.slots:
            if slot.phase == "revive":
                ray.kill(slot.runner, no_restart=True)

    def _strays(self) -> bool:
        """Before the run ends: RUNNING trials no slot runs. An ask whose answer a store
        outage cut off leaves a trial RUNNING that no driver claimed; the recovery fails and
        re-queues it once it is older than the grace period (until then it may be another
        driver's ask in flight), so the run waits for that instead of ending with a trial
        RUNNING and the study one trial short. True when a trial was taken back."""
        took, deadline = False, None
        while True:
            mine = {s.trial._trial_id for s in self._busy() if s.trial is not None}
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
            for number, why in self._db(recover, self.study, self.me, what="checking trials"):
                self._note(f"trial {number} failed and re-queued: {why}")
                took = True
            time.sleep(1.0)

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self.last_heartbeat >= HEARTBEAT_S / 2:
            self.last_heartbeat = now
            ids = [s.trial._trial_id for s in self._busy() if s.trial is not None]
            if ids:
                self._db(record_heartbeats, self.storage, ids, what="recording heartbeats")
        if now - self.last_recovery >= GRACE_S / 2:
            self.last_recovery = now
            for number, why in self._db(recover, self.study, self.me, what="checking trials"):
                self._note(f"trial {number} failed and re-queued: {why}")
        if self.progress:
            self.progress.tick(
                self._counts(), self.best, time.perf_counter() - self.t0, self._target()
            )

    def _counts(self) -> dict[str, int]:
        c = {k.lower(): v for k, v in self.counts.items() if k != "WAITING"}
        c["running"] = len(self._busy())
        return c

    def _launch(self, slot: _Slot) -> None:
        trial = self._db(self.study.ask, self.dists, what="asking for a trial")
        self.taken += 1
        self._db(
            set_trial_attrs,
            self.storage,
            trial._trial_id,
            system={attrs.DRIVER: self.me},
            heartbeat=True,
            what="recording the trial's driver",
        )
        frozen = getattr(trial, "_cached_frozen_trial", None)
        if frozen is None:
            frozen = self._db(self.storage.get_trial, trial._trial_id, what="reading a trial")
        self.view.running(frozen)  # the next ask sees it running at once (constant liar)
        params = {**self.fixed, **trial.params}
        slot.trial, slot.params, slot.epoch = trial, params, 0
        slot.started = time.perf_counter()
        slot.findings, slot.probe_seconds = [], 0.0
        slot.metrics, slot.value = {}, None
        slot.checkpoints, slot.weights, slot.chain, slot.resume = [], None, [], None
        slot.checkpoint_seconds = 0.0
        resume = None
        if self.retention is not None:
            resume = self._resume_of(slot, trial)
        # the first epoch runs in the same call: one round trip fewer per trial
        slot.ref, slot.phase = (
            slot.runner.start.remote(trial.number, params, self.spec.budget.epochs, True, resume),
            "start",
        )

    def _resume_of(self, slot: _Slot, trial: optuna.Trial) -> dict[str, Any] | None:
        """A re-queued trial inherits the checkpoints of the run it continues (recorded on
        it at once, so a second crash still resumes from them)."""
        user_attrs = self._db(
            self.storage.get_trial_user_attrs, trial._trial_id, what="reading a trial"
        )
        resume = user_attrs.get(attrs.RESUME)
        if not resume:
            return None
        slot.resume, slot.chain = resume, list(resume.get("chain", []))
        slot.checkpoints = list(resume["checkpoints"])
        self._db(
            self.storage.set_trial_user_attr,
            trial._trial_id,
            attrs.CHECKPOINTS,
            slot.checkpoints,
            what="recording a checkpoint",
        )
        return {"trial": resume["trial"], "checkpoints": slot.checkpoints}

    def _resumed(self, slot: _Slot, epoch: int) -> None:
        """The runner resumed at `epoch`: the trial's curve continues the earlier run's, so
        the pruner judges one whole curve."""
        assert slot.trial is not None and slot.resume is not None
        earlier = self._db(self.storage.get_trial, slot.resume["trial_id"], what="reading a trial")
        curve = {s: v for s, v in earlier.intermediate_values.items() if s < epoch}
        tid = slot.trial._trial_id
        reports = [(tid, step, value) for step, value in sorted(curve.items())]
        if self._db(record_reports, self.storage, reports, what="reporting a trial's progress"):
            raise UpdateFinishedTrialError(f"trial {slot.trial.number} is already finished")
        slot.trial._cached_frozen_trial.intermediate_values.update(curve)
        slot.epoch = epoch
        self._db(
            self.storage.set_trial_user_attr,
            slot.trial._trial_id,
            attrs.RESUMED_FROM,
            {"trial": slot.resume["trial"], "epoch": epoch},
            what="recording where a trial resumed",
        )
        self._note(
            f"trial {slot.trial.number} resumed from trial {slot.resume['trial']}'s checkpoint "
            f"at epoch {epoch}"
        )

    def _saved(self, slot: _Slot, entry: dict[str, Any]) -> None:
        assert slot.trial is not None and self.retention is not None
        if entry["kind"] == "weights":
            slot.weights = entry["id"]
        elif entry["kind"] == "error":
            self._note(f"trial {slot.trial.number}: {entry['text']}")
        else:
            slot.checkpoints = self.retention.checkpoint_written(
                slot.trial._trial_id, slot.checkpoints, entry
            )

    def _handle(self, slot: _Slot, ref: Any) -> None:
        import ray

        slot.ref = None
        try:
            result = ray.get(ref)
        except ray.exceptions.RayActorError as e:
            self._worker_died(slot, e)
            return
        except ray.exceptions.RayError as e:
            if slot.trial is not None:
                self._fail(slot, f"{type(e).__name__}: {e}")
            return
        if slot.phase == "revive":
            slot.phase, slot.revives = "", 0
            if result.error is not None:  # the restarted worker cannot load the task any more
                self.slots.remove(slot)
                self._note(f"a restarted Ray worker could not load the task: {result.error}")
            return
        assert slot.trial is not None
        try:
            self._result(slot, result)
        except UpdateFinishedTrialError:
            self._taken_over(slot)

    def _result(self, slot: _Slot, result: TrialUpdate) -> None:
        assert slot.trial is not None
        slot.findings.extend(result.findings)
        self.warnings.see(slot.trial.number, result.findings)
        for text in result.notes:
            self._note(f"trial {slot.trial.number}: {text}")
        if result.resumed_epoch is not None:
            self._resumed(slot, result.resumed_epoch)
        elif slot.resume is not None and result.notes:
            slot.checkpoints = []  # none of the inherited checkpoints loaded: a fresh start
        for entry in result.saved:
            self._saved(slot, entry)
        if result.checkpoint_seconds is not None:
            slot.checkpoint_seconds = result.checkpoint_seconds
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
            self._fail(slot, result.error)
        elif result.stopped is not None:
            self._prune(slot, f"stopped by probe: {result.stopped}", probed=True)
        elif result.metrics is not None:
            slot.phase = "epoch"
            self._epoch_done(slot, result.metrics)
        elif result.done:
            self._returned_early(slot)
        else:
            slot.ref, slot.phase = slot.runner.epoch.remote(), "epoch"

    def _worker_died(self, slot: _Slot, error: Exception) -> None:
        """The actor's process died (killed, out of host memory, its node left). Ray restarts
        the actor (elsewhere if the node is gone); the trial is failed and re-queued with the
        same params, and the slot waits for its worker to come back."""
        import ray

        if slot.trial is not None:
            trial = self._db(self.storage.get_trial, slot.trial._trial_id, what="reading a trial")
            why = f"the Ray worker running it died ({type(error).__name__})"
            if self._db(requeue, self.study, trial, why, what="re-queuing a trial"):
                self._count(slot, TrialState.FAIL, None, why + "; re-queued")
            self._release(slot)
        if slot.phase == "revive":
            slot.revives += 1
            if slot.revives > REVIVES:
                self.slots.remove(slot)
                self._note(
                    f"a Ray worker failed to come back {REVIVES} times; going on with the others"
                )
                if not self.slots:
                    self.stop_reason = "every Ray worker died; run the same command to resume"
                return
            time.sleep(min(0.1 * 2**slot.revives, 2.0))  # let Ray see the death first
        # the same handle while Ray restarts the actor, a new actor once it is dead for good
        slot.runner = self.workers.revive(slot.runner)
        try:
            slot.ref, slot.phase = slot.runner.load.remote(), "revive"
        except ray.exceptions.RayActorError:
            slot.ref, slot.phase = None, "revive"
            self._worker_died(slot, error)

    def _returned_early(self, slot: _Slot) -> None:
        """The trial's fit function returned before `budget.epochs` reports: it is complete
        with the last value it reported, or failed if it reported none."""
        if slot.value is None:
            self._fail(
                slot,
                "the task's fit function returned without calling trial.report(metrics); "
                f"report the metrics once per epoch ({self.spec.budget.epochs} epochs)",
            )
        else:
            self._finish(slot, TrialState.COMPLETE, slot.value, "")

    def _taken_over(self, slot: _Slot) -> None:
        assert slot.trial is not None
        self._note(
            f"trial {slot.trial.number} was failed and re-queued by another driver "
            "(its heartbeat had lapsed); dropping this run of it"
        )
        self._release(slot)

    def _epoch_done(self, slot: _Slot, metrics: dict[str, float]) -> None:
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
            self.stop_reason = self.stop_reason or why
            self._fail(slot, why)
            return
        if not math.isfinite(value):
            self._prune(slot, f"{metric} became {value} at epoch {slot.epoch}", probed=True)
            return
        slot.metrics, slot.value = metrics, value
        self.reports.append(slot)  # written with the others of this loop turn, then judged

    def _flush_reports(self) -> None:
        """Write the epochs reported in this loop turn in one transaction, then decide each
        trial's next step (finish, prune or train on): the pruner sees every report."""
        slots, self.reports = self.reports, []
        if not slots:
            return
        reports = []
        for slot in slots:
            assert slot.trial is not None and slot.value is not None
            reports.append((slot.trial._trial_id, slot.epoch, float(slot.value)))
        finished = self._db(
            record_reports, self.storage, reports, what="reporting the trials' progress"
        )
        for slot in slots:
            assert slot.trial is not None and slot.value is not None
            if slot.trial._trial_id in finished:
                self._taken_over(slot)
                continue
            slot.trial._cached_frozen_trial.intermediate_values[slot.epoch] = float(slot.value)
            try:
                self._judge(slot)
            except UpdateFinishedTrialError:
                self._taken_over(slot)

    def _judge(self, slot: _Slot) -> None:
        """After an epoch's report: the trial completes, is pruned or trains another epoch."""
        assert slot.trial is not None and slot.value is not None
        value = slot.value
        slot.epoch += 1
        if slot.epoch >= self.spec.budget.epochs:
            self._finish(slot, TrialState.COMPLETE, value, "")
        elif self.spec.pruner.type != "none" and self._db(
            slot.trial.should_prune, what="asking the pruner"
        ):
            self._finish(slot, TrialState.PRUNED, None, f"{attrs.BY_PRUNER} at epoch {slot.epoch}")
        else:
            slot.ref, slot.phase = slot.runner.epoch.remote(), "epoch"

    def _prune(self, slot: _Slot, reason: str, probed: bool) -> None:
        if probed:
            # What the trial would still have cost, had no probe stopped it.
            assert slot.trial is not None
            done = max(slot.epoch, 1)
            spent = time.perf_counter() - slot.started
            saved = spent / done * (self.spec.budget.epochs - slot.epoch)
            self.saved_seconds += saved
            self._finish(
                slot, TrialState.PRUNED, None, reason, {attrs.SECONDS_SAVED: round(saved, 3)}
            )
            return
        self._finish(slot, TrialState.PRUNED, None, reason)

    def _fail(self, slot: _Slot, error: str) -> None:
        self._finish(slot, TrialState.FAIL, None, error)

    def _finish(
        self,
        slot: _Slot,
        state: TrialState,
        value: float | None,
        note: str,
        notes: dict[str, Any] | None = None,
    ) -> None:
        """Record the trial's result: its attributes in one transaction, then Optuna's tell."""
        trial = slot.trial
        assert trial is not None
        tid = trial._trial_id
        notes = dict(notes or {})
        if slot.probe_seconds:
            notes[attrs.PROBE_SECONDS] = round(slot.probe_seconds, 4)
        if slot.checkpoint_seconds:
            notes[attrs.CHECKPOINT_SECONDS] = round(slot.checkpoint_seconds, 4)
        if set(slot.metrics) - BUILTIN_METRICS:  # a task's own metrics: keep them all
            notes[attrs.METRICS] = dict(slot.metrics)
        if slot.findings:
            notes[attrs.FINDINGS] = slot.findings
            notes[attrs.VERDICT], notes[attrs.PROBES] = trial_summary(slot.findings)
        if state == TrialState.FAIL:
            notes[attrs.ERROR] = note[:2000]
        elif state == TrialState.PRUNED and note:
            notes[attrs.STOPPED] = note[:2000]
        if notes:
            self._db(set_trial_attrs, self.storage, tid, notes, what="recording a trial's result")
        kept = None
        if (
            self.retention is not None
            and state == TrialState.COMPLETE
            and slot.weights is not None
            and value is not None
            and self.retention.would_keep(value)
        ):
            self.retention.record_weights(tid, trial.number, slot.weights)
            kept = slot.weights
        told = self._db(
            self.study.tell,
            trial,
            value if state == TrialState.COMPLETE else None,
            state=state,
            skip_if_finished=True,  # a retried tell whose first try did commit
            what="recording a trial's result",
        )
        if told.state != state:
            self._taken_over(slot)
            return
        self._count(slot, state, value, note)
        slot.runner.finish.remote()
        if self.retention is not None:
            self.retention.finished(trial.number, tid, value, kept, slot.checkpoints, slot.chain)
        self._release(slot, told)

    def _count(self, slot: _Slot, state: TrialState, value: float | None, note: str) -> None:
        assert slot.trial is not None
        self.counts[state.name] += 1
        if state in COUNTED:
            self.own_finished += 1
        if state == TrialState.FAIL:
            self.consecutive_failures += 1
            limit = self.spec.budget.max_consecutive_failures
            if self.consecutive_failures >= limit and not self.stop_reason:
                self.stop_reason = (
                    f"{limit} trials failed in a row (last: {note}); fix the error, then run "
                    "the same command to resume (budget.max_consecutive_failures sets the limit)"
                )
        else:
            self.consecutive_failures = 0
        if state == TrialState.COMPLETE and value is not None:
            maximize = self.spec.objective.direction == "maximize"
            if self.best is None or (value > self.best if maximize else value < self.best):
                self.best = value
        if self.progress:
            self.progress.trial_done(
                slot.trial.number, state.name.lower(), value, slot.params, note
            )

    def _release(self, slot: _Slot, told: Any = None) -> None:
        if slot.trial is not None:
            self.view.done(slot.trial._trial_id, told)
            if told is None or told.state not in COUNTED:
                self.counted_at = -float("inf")  # a failed trial no longer counts: recount
        slot.trial, slot.ref, slot.phase = None, None, ""

    def _abandon(self, why: str) -> None:
        """On interrupt: fail the running trials and re-queue their params so a re-run
        finishes them. Never leaves a trial RUNNING (short of a store that is down, where the
        next run's recovery does it)."""
        for slot in self._busy():
            assert slot.trial is not None
            try:
                trial = self.storage.get_trial(slot.trial._trial_id)
                requeue(self.study, trial, why)
            except Exception as e:  # the store is down or full: the next run recovers it
                log.warning(
                    "trial %s could not be re-queued (%s); the next run does it",
                    slot.trial.number,
                    str(e).splitlines()[0] if str(e) else type(e).__name__,
                )

    def outcome(self, gate: dict[str, Any] | None) -> Outcome:
        """The run's outcome, with the gate report it started from."""
        best_params = best_number = None
        try:
            bt = self.study.best_trial
            best_params, best_number = {**self.fixed, **bt.params}, bt.number
            self.best = float(bt.values[0])
        except ValueError:
            pass
        counts = {k.lower(): v for k, v in self.counts.items() if k not in ("WAITING", "RUNNING")}
        return Outcome(
            self.study.study_name,
            self.spec.storage,
            counts,
            self.best,
            best_params,
            best_number,
            time.perf_counter() - self.t0,
            gate,
            self.stop_reason,
            self.saved_seconds,
        )
