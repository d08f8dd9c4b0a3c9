"""The search's rounds: each stage of a coarse-to-fine search, then the confirmation of the
best configurations over new seeds.

What round comes next is read from the store every time (the trials each stage has, the
confirmation runs each configuration has), never from this process's memory: a driver that
starts on a study killed inside a stage, or between two, or during confirmation, picks up
exactly there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from sweeper.definition import Definition
from sweeper.search import NarrowedSampler, describe, distributions, narrow, space_text, top_share
from sweeper.store import attrs, front_spread, is_confirmation, rank, retried, stage_of

TAKEN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
NOT_NEEDED = "not run: another driver took the confirmation run this driver asked for"


@dataclass
class Round:
    """One pass of the search loop: a stage of the search (its trials, epochs and space), or
    the confirmation runs (params fixed, never pruned)."""

    name: str
    epochs: int
    dists: dict[str, BaseDistribution]
    # the study's trials finished or running to reach; None: no such limit (confirmation runs
    # what waits; with --trials N, the driver's own count stops it)
    target: int | None
    stage: int | None = None  # the stage new trials are marked with (None: unstaged study)
    kept: dict[str, list[Any]] = field(default_factory=dict)  # narrowed categoricals
    confirm: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def prune(self) -> bool:
        """Whether the pruner may stop this round's trials (confirmation runs train in full)."""
        return not self.confirm

    def install(self, study: optuna.Study, view: Any, sampler: Any, seed: int | None) -> None:
        """Point the study's sampler and its view (`sweeper.search.StudyView`) at this round:
        narrowed categoricals drawn from their kept choices, a stage's trials alone seen."""
        study.sampler = NarrowedSampler(sampler, self.kept, seed) if self.kept else sampler
        view.only(None if self.stage is None and not self.confirm else self.keeps)

    def marks(self, given: dict[str, Any]) -> dict[str, Any]:
        """The user attributes a trial asked in this round gets (`given`: an enqueued
        trial's own, which it keeps)."""
        if self.stage is not None and attrs.STAGE not in given:
            return {attrs.STAGE: self.stage}
        return {}

    def epochs_of(self, given: dict[str, Any], spec: Definition) -> int:
        """How long a trial asked in this round trains: a confirmation run the last stage's
        epochs, a re-run of an earlier stage's trial that stage's (its checkpoints fit them)."""
        plan = spec.stage_plan()
        if attrs.CONFIRMS in given:
            return plan[-1].epochs
        if attrs.STAGE in given:
            return plan[min(int(given[attrs.STAGE]), len(plan)) - 1].epochs
        return self.epochs

    def keeps(self, trial: FrozenTrial) -> bool:
        """Whether the round's sampler and pruner learn from `trial`."""
        if is_confirmation(trial):
            return False
        return self.stage is None or stage_of(trial) == self.stage


def next_round(
    study: optuna.Study, spec: Definition, quota: bool, storage: Any = None
) -> Round | None:
    """The round to run now, from what the store holds; None when the study is done. With
    `quota` (`--trials N`) it is always a search round: of the stage the study is in.
    `storage`: the study's storage itself, when `study` reads through a stage's view."""
    storage = storage if storage is not None else study._storage
    trials = storage.get_all_trials(study._study_id, deepcopy=False)
    maximize = spec.objective.direction == "maximize"
    full = distributions(spec.search)
    plan = spec.stage_plan()
    search = [t for t in trials if not is_confirmation(t)]
    confirming = sum(t.state in TAKEN for t in trials if is_confirmation(t))
    taken = sum(t.state in TAKEN for t in search)
    total = 0
    for i, st in enumerate(plan, start=1):
        total += st.trials
        last = i == len(plan)
        if taken < total or (quota and last):
            staged = spec.stages is not None
            rnd = Round(
                name=f"stage {i} of {len(plan)}" if staged else "search",
                epochs=st.epochs,
                dists=full,
                # with --trials N the last stage takes what is left of N
                target=None if quota and last else total + confirming,
                stage=i if staged else None,
            )
            if i > 1:
                _narrowed(rnd, study, search, i, st.narrow, full, spec.maximized())
            return rnd
    if spec.confirm is None or quota:
        return None
    return _confirmation(study, spec, trials, maximize, full)


def _narrowed(
    rnd: Round,
    study: optuna.Study,
    search: list[FrozenTrial],
    stage: int,
    share: float,
    full: dict[str, BaseDistribution],
    maximize: list[bool],
) -> None:
    """Narrow the round's space around the top `share` of the stage before (with several
    objectives, its front and the layers behind it); record it."""
    before = [t for t in search if stage_of(t) == stage - 1]
    top = top_share(before, share, maximize)
    if not top:
        rnd.notes.append(
            f"stage {stage - 1} completed no trial: stage {stage} searches the whole space"
        )
        return
    rnd.dists, rnd.kept = narrow(full, [t.params for t in top])
    space = describe(rnd.dists, rnd.kept)
    narrowed = dict(attrs.get_study_attr(study, attrs.NARROWED, {}) or {})
    if narrowed.get(str(stage)) != space:
        narrowed[str(stage)] = {"from_top": len(top), "of": len(before), "space": space}
        attrs.set_study_attr(study, attrs.NARROWED, narrowed)
    best = "best" if len(maximize) == 1 else "front-ranked"
    rnd.notes.append(
        f"stage {stage}: the space narrowed around the {best} {len(top)} of stage {stage - 1}'s "
        f"trials: {space_text(space)}"
    )


def _confirmation(
    study: optuna.Study,
    spec: Definition,
    trials: list[FrozenTrial],
    maximize: bool,
    full: dict[str, BaseDistribution],
) -> Round | None:
    """Enqueue the confirmation runs still missing (`seeds` per configuration among the `top`
    best; with several objectives, `top` members of the front); the round runs what waits.
    None when every one has run."""
    assert spec.confirm is not None
    ranking = rank(trials, maximize)
    again = retried(trials)
    runs: dict[int, int] = {}  # confirmation runs made of each trial, re-runs counted once
    waiting = 0
    for t in trials:
        if is_confirmation(t) and t.number not in again:
            source = int(t.user_attrs[attrs.CONFIRMS])
            runs[source] = runs.get(source, 0) + 1
            waiting += t.state in (TrialState.WAITING, TrialState.RUNNING)
    top, seeds = spec.confirm.top, spec.confirm.seeds
    goals = spec.maximized()
    # several objectives: members of the front, spread along it (never the best of one)
    chosen = front_spread(ranking.candidates, goals, top) if len(goals) > 1 else None
    added = 0
    for t in chosen if chosen is not None else ranking.top_distinct(top):
        for _ in range(seeds - runs.get(t.number, 0)):
            user: dict[str, Any] = {attrs.CONFIRMS: t.number}
            if spec.stages:
                user[attrs.STAGE] = stage_of(t)
            study.enqueue_trial(dict(t.params), user_attrs=user, skip_if_exists=False)
            added += 1
    state = {"top": top, "seeds": seeds, "done": not (added or waiting)}
    if attrs.get_study_attr(study, attrs.CONFIRM) != state:
        attrs.set_study_attr(study, attrs.CONFIRM, state)
    if not (added or waiting):
        return None
    epochs = spec.stage_plan()[-1].epochs
    rnd = Round(name="confirmation", epochs=epochs, dists=full, target=None, confirm=True)
    if added:
        which = (
            f"{len(chosen)} member{'s' if len(chosen) > 1 else ''} of the front"
            if chosen is not None
            else f"the best {min(top, len(ranking.candidates))} configurations"
        )
        rnd.notes.append(
            f"confirming {which}: {added} runs with new seeds ({seeds} each, {epochs} epochs)"
        )
    return rnd


def record_stages(study: optuna.Study, spec: Definition) -> None:
    """Keep the study's stages with it (status, the report and `best` read them)."""
    if spec.stages:
        stages = [st.model_dump() for st in spec.stages]
        if attrs.get_study_attr(study, attrs.STAGES) != stages:
            attrs.set_study_attr(study, attrs.STAGES, stages)
