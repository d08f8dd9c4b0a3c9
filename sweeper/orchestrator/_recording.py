"""Recording a trial's result in the study store: its attributes, Optuna's tell, the counts and
the best value, the weights kept, and the run's outcome. Everything the search writes about a
finished trial goes through `Recorder`."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import optuna
from optuna.trial import TrialState

from sweeper.catalog import COST_METRICS
from sweeper.definition import Definition
from sweeper.diagnosis import Diagnosis
from sweeper.orchestrator._budget import COUNTED, Budget
from sweeper.orchestrator._recovery import requeue
from sweeper.orchestrator._retention import Retention
from sweeper.orchestrator._slots import Slot
from sweeper.probes import Report
from sweeper.report import trial_summary
from sweeper.search import feasibility_of, violations
from sweeper.store import Ranking, attrs, record_reports, set_trial_attrs, study_ranking

log = logging.getLogger("sweeper")


class Progress(Protocol):
    """What the search reports to while it runs (the console display, or nothing)."""

    def gate_done(self, report: Report) -> None:
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
    gate: Report | None
    stopped_reason: str = ""
    probe_seconds_saved: float = 0.0
    ranking: Ranking | None = None  # the trials ranked (stages, confirmations)
    after: list[str] = field(default_factory=list)  # stages, confirmation, diagnosis: lines
    diagnosis: Diagnosis | None = None
    ended_by: dict[str, int] = field(default_factory=dict)  # what ended unfinished trials
    front: Any = None  # several objectives: the Pareto front (sweeper.store.Front)


def objective_values(spec: Definition, metrics: dict[str, float] | None) -> list[float] | str:
    """The values of a several-objective trial from its last epoch's metrics, in the
    definition's order, or why they cannot be had (a metric missing or not finite)."""
    got = dict(metrics or {})
    values: list[float] = []
    for o in spec.goals():
        v = got.get(o.metric)
        if v is None:
            if o.metric in COST_METRICS:
                return (
                    f"the objective {o.metric} was not measured: sweeper measures costs on the "
                    "model given to trial.watch (an own fit must call trial.watch(model)), "
                    f"and {o.metric} needs "
                    + (
                        "a forward of that model"
                        if o.metric in ("flops", "latency_ms")
                        else "a process that can read its memory"
                    )
                )
            return (
                f"the objective {o.metric} is not among the metrics the trial's last epoch "
                f"reported ({sorted(got)}); report it, or fix the name in `objectives:`"
            )
        if not math.isfinite(v):
            return f"the objective {o.metric} became {v} at the trial's last epoch"
        values.append(float(v))
    return values


class Recorder:
    """Writes trials' reports and results; keeps the best value and the time probes saved."""

    def __init__(
        self,
        study: optuna.Study,
        spec: Definition,
        budget: Budget,
        view: Any,
        retention: Retention | None,
        db: Callable[..., Any],
        progress: Progress | None,
    ) -> None:
        """`view`: the sampler's snapshot of the study (told when a trial ends); `db`: the
        search's store call wrapper (rides out outages)."""
        self.study, self.storage = study, study._storage
        self.spec, self.budget, self.view = spec, budget, view
        self.retention = retention
        self._db = db
        self.progress = progress
        self.saved_seconds = 0.0
        self.best: float | None = None
        try:
            self.best = float(study.best_value)
        except (ValueError, RuntimeError):  # none yet; several objectives (the front)
            pass

    def _note(self, text: str) -> None:
        if self.progress is not None:
            self.progress.note(text)

    def write_reports(self, slots: list[Slot]) -> set[int]:
        """The epochs the `slots` reported, in one transaction; returns the trial ids that were
        already finished (another driver took them over)."""
        reports = []
        for slot in slots:
            assert slot.trial is not None and slot.value is not None
            reports.append((slot.trial._trial_id, slot.epoch, float(slot.value)))
        finished = self._db(
            record_reports, self.storage, reports, what="reporting the trials' progress"
        )
        for slot in slots:
            assert slot.trial is not None and slot.value is not None
            if slot.trial._trial_id not in finished:
                slot.trial._cached_frozen_trial.intermediate_values[slot.epoch] = slot.value
        return set(finished)

    def prune(self, slot: Slot, reason: str, probed: bool) -> None:
        """The trial is pruned; a probe's stop also records what the rest would have cost."""
        if probed:
            assert slot.trial is not None
            done = max(slot.epoch, 1)
            spent = time.perf_counter() - slot.started
            saved = spent / done * (slot.epochs - slot.epoch)
            self.saved_seconds += saved
            self.finish(
                slot, TrialState.PRUNED, None, reason, {attrs.SECONDS_SAVED: round(saved, 3)}
            )
            return
        self.finish(slot, TrialState.PRUNED, None, reason)

    def fail(self, slot: Slot, error: str, reason: str | None = None) -> None:
        """The trial failed with `error`; `reason` names the kind when sweeper knows it
        (hang, crash), kept as the trial's `sweeper:reason`."""
        self.finish(slot, TrialState.FAIL, None, error, {attrs.REASON: reason} if reason else None)

    def finish(
        self,
        slot: Slot,
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
        if slot.metrics:  # every metric of the last epoch (the train side of the diagnosis)
            notes[attrs.METRICS] = dict(slot.metrics)
        if slot.findings:
            notes[attrs.FINDINGS] = [f.to_dict() for f in slot.findings]
            notes[attrs.VERDICT], notes[attrs.PROBES] = trial_summary(slot.findings)
        told_value: Any = value
        if state == TrialState.COMPLETE and self.spec.objectives:
            values = objective_values(self.spec, slot.metrics)
            if isinstance(values, str):  # an objective the trial did not report or measure
                state, value, told_value, note = TrialState.FAIL, None, None, values
            else:
                told_value = values
        system: dict[str, Any] = {}
        if self.spec.constraints and state in (TrialState.COMPLETE, TrialState.PRUNED):
            # Optuna's own constraints attribute (its samplers, best_trials and dashboard read
            # it); a sampler with a constraints_func writes the same values again as it is told
            system[attrs.CONSTRAINTS] = violations(self.spec.constraints, slot.metrics)
            feasible = feasibility_of(self.study.sampler)
            if feasible is not None:
                feasible.given(tid, system[attrs.CONSTRAINTS])
        if state == TrialState.FAIL:
            notes[attrs.ERROR] = note[:2000]
        elif state == TrialState.PRUNED and note:
            notes[attrs.STOPPED] = note[:2000]
        if notes or system:
            self._db(
                set_trial_attrs,
                self.storage,
                tid,
                notes,
                system,
                what="recording a trial's result",
            )
        kept = None
        if (
            self.retention is not None
            and state == TrialState.COMPLETE
            and slot.weights is not None
            and value is not None
            and slot.prune  # a confirmation run (never pruned) keeps no weights: its source
            # trial's are the configuration's, and a lucky seed must not push them out
            and all(v <= 0 for v in system.get(attrs.CONSTRAINTS, []))  # an infeasible trial: never
            and self.retention.would_keep(value, told_value if self.spec.objectives else None)
        ):
            self.retention.record_weights(tid, trial.number, slot.weights)
            kept = slot.weights
        told = self._db(
            self.study.tell,
            trial,
            told_value if state == TrialState.COMPLETE else None,
            state=state,
            skip_if_finished=True,  # a retried tell whose first try did commit
            what="recording a trial's result",
        )
        if told.state != state:
            self.taken_over(slot)
            return
        self.count(slot, state, value, note)
        slot.runner.finish.remote()
        if self.retention is not None:
            self.retention.finished(
                trial.number,
                tid,
                value,
                kept,
                slot.checkpoints,
                slot.chain,
                told_value if self.spec.objectives and kept else None,
            )
        self.release(slot, told)

    def count(self, slot: Slot, state: TrialState, value: float | None, note: str) -> None:
        """A trial of this driver ended: the counts, the best value and the user's line."""
        assert slot.trial is not None
        self.budget.count(state, note)
        if state == TrialState.COMPLETE and value is not None:
            maximize = self.spec.objective.direction == "maximize"
            if self.best is None or (value > self.best if maximize else value < self.best):
                self.best = value
        if self.progress:
            self.progress.trial_done(
                slot.trial.number, state.name.lower(), value, slot.params, note
            )

    def release(self, slot: Slot, told: Any = None) -> None:
        """The slot is free again; the sampler's snapshot learns how its trial ended."""
        if slot.trial is not None:
            self.view.done(slot.trial._trial_id, told)
            if told is None or told.state not in COUNTED:
                self.budget.recount()  # a failed trial no longer counts: recount
        slot.clear()

    def drop(self, trial: optuna.Trial, why: str) -> None:
        """Fail a trial this driver asked for but will not run (`why`), before any slot has
        it; it does not count toward the budget."""
        tid = trial._trial_id
        self._db(set_trial_attrs, self.storage, tid, {attrs.ERROR: why}, what="recording a trial")
        told = self._db(
            self.study.tell,
            trial,
            state=TrialState.FAIL,
            skip_if_finished=True,
            what="recording a trial's result",
        )
        self.view.done(tid, told)
        self.budget.recount()

    def taken_over(self, slot: Slot) -> None:
        """Another driver failed and re-queued this slot's trial: this run of it is dropped."""
        assert slot.trial is not None
        self._note(
            f"trial {slot.trial.number} was failed and re-queued by another driver "
            "(its heartbeat had lapsed); dropping this run of it"
        )
        self.release(slot)

    def abandon(self, busy: list[Slot], why: str) -> None:
        """On interrupt: fail the running trials and re-queue their params so a re-run
        finishes them. Never leaves a trial RUNNING (short of a store that is down, where the
        next run's recovery does it)."""
        for slot in busy:
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

    def outcome(self, gate: Report | None, fixed: dict[str, Any], t0: float) -> Outcome:
        """The run's outcome, with the gate report it started from; the best is the
        ranking's (the last stage's, the best confirmed mean), as `sweeper best` gives it."""
        best_params = best_number = None
        ranking = self._db(study_ranking, self.study, what="reading the study's trials")
        bt = ranking.best()
        if bt is not None:
            best_params, best_number = {**fixed, **bt.params}, bt.number
            self.best = float(bt.values[0])
        elif self.spec.constraints:
            self.best = None  # trials completed, none kept the constraints: there is no best
        counts = self.budget.counts
        front = None
        if self.spec.objectives:
            from sweeper.store import study_front

            front = self._db(study_front, self.study, what="reading the study's front")
        return Outcome(
            self.study.study_name,
            self.spec.storage,
            {k.lower(): v for k, v in counts.items() if k not in ("WAITING", "RUNNING")},
            self.best,
            best_params,
            best_number,
            time.perf_counter() - t0,
            gate,
            self.budget.stop_reason,
            self.saved_seconds,
            ranking,
            ended_by=dict(self.budget.ended_by),
            front=front,
        )
