"""What `sweeper status` shows about a stored study, read with a few queries (not every trial:
at 10,000 trials that would take seconds)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FRESH_UP_TO = 5000  # up to this many trials, status makes the verdict if no run has kept one


@dataclass
class StudyStatus:
    """A stored study at a glance: its trial counts, best trial, gate, Ray jobs, checkpoints
    and the last trials that were stopped or failed."""

    name: str
    counts: dict[str, int]
    best: Any  # optuna FrozenTrial, or None before a trial completes
    gate: dict[str, Any] | None
    seconds_saved: float
    jobs: list[dict[str, Any]] = field(default_factory=list)
    checkpoint_store: dict[str, Any] | None = None
    recent_stopped: list[Any] = field(default_factory=list)  # FrozenTrials, pruned or failed
    after: Any = None  # sweeper.diagnosis.AfterSearch: stages, confirmations, the verdict
    # several objectives: {"metrics", "size", "hypervolume"} of the Pareto front
    front: dict[str, Any] | None = None

    @property
    def trials(self) -> int:
        """All trials of the study, in any state."""
        return sum(self.counts.values())

    def to_json(self) -> dict[str, Any]:
        """The `sweeper status --json` object."""
        best = self.best
        return {
            "study": self.name,
            "counts": self.counts,
            "trials": self.trials,
            "best_value": best.values[0] if best else None,
            "best_params": best.params if best else None,
            "best_trial": best.number if best else None,
            "gate_verdict": self.gate["verdict"] if self.gate else None,
            "probe_seconds_saved": round(self.seconds_saved, 3),
            "jobs": self.jobs,
            "checkpoint_store": self.checkpoint_store,
            "stages": self.after.stages if self.after is not None else [],
            "confirmed": (
                self.after.confirmed.to_dict(self.after.metrics)
                if self.after is not None and self.after.confirmed is not None
                else None
            ),
            "diagnosis": (
                self.after.diagnosis.to_dict()
                if self.after is not None and self.after.diagnosis is not None
                else None
            ),
            "front": self.front,
        }


def study_status(name: str, storage: str, recent: int = 10) -> StudyStatus:
    """Read the status of study `name` in the store at `storage` (the last `recent` pruned or
    failed trials among it); the state of its last three Ray jobs is asked of their clusters."""
    from optuna.trial import TrialState

    from sweeper.store import (
        attrs,
        last_trials,
        load_study,
        needs_ranking,
        rank,
        state_counts,
        user_attr_values,
    )

    study = load_study(storage, name)
    sid = study._study_id
    saved = sum(map(float, user_attr_values(study._storage, sid, attrs.SECONDS_SAVED)))
    jobs = attrs.get_study_attr(study, attrs.JOBS, []) or []
    if jobs:
        from sweeper.orchestrator.jobs import job_state

        for job in jobs[-3:]:
            job["state"] = job_state(job["address"], job["id"])
    counts = state_counts(study._storage, sid)
    system = study._storage.get_study_system_attrs(sid)
    front = None
    # staged or confirmed: every trial read once, for the front and the ranking
    trials = study._storage.get_all_trials(sid, deepcopy=False) if needs_ranking(system) else None
    if len(study.directions) > 1:
        from sweeper.store import hypervolume, study_front

        members = study_front(study, trials)
        best = members.pick() if members.members else None
        front = {
            "metrics": members.metrics,
            "size": len(members.members),
            "hypervolume": hypervolume(study, members),
        }
    else:
        try:
            best = study.best_trial
        except ValueError:
            best = None
    after = None
    if best is not None:
        from sweeper.diagnosis import AfterSearch, Diagnosis, after_search

        if trials is not None or sum(counts.values()) <= FRESH_UP_TO:
            maximize = study.directions[0].name == "MAXIMIZE"
            ranking = rank(trials, maximize) if trials is not None else None
            after = after_search(study, ranking=ranking)
            best = after.ranking.best() or best
        elif isinstance(system.get(attrs.DIAGNOSIS), dict):
            # a big study: the verdict its last run kept, without reading every trial again
            kept = Diagnosis.from_dict(system[attrs.DIAGNOSIS])
            after = AfterSearch([kept.metric], rank([], maximize=False), [], kept)
    return StudyStatus(
        name=name,
        counts=counts,
        best=best,
        gate=attrs.gate_of(study),
        seconds_saved=saved,
        jobs=jobs,
        checkpoint_store=_checkpoint_store(study, name),
        recent_stopped=last_trials(
            study._storage, sid, (TrialState.PRUNED, TrialState.FAIL), recent
        ),
        after=after,
        front=front,
    )


def _checkpoint_store(study: Any, name: str) -> dict[str, Any] | None:
    """Where the study's checkpoints live and how much they hold (folders only)."""
    from sweeper.checkpoint import Checkpoints
    from sweeper.store import attrs, user_attr_values

    location = attrs.get_study_attr(study, attrs.CHECKPOINT_STORE)
    if not location:
        return None
    kept = [str(a) for a in user_attr_values(study._storage, study._study_id, attrs.WEIGHTS)]
    try:
        size = Checkpoints(location, name).size(kept)
    except Exception:
        size = None
    return {"location": location, "weights": len(kept), "bytes": size}
