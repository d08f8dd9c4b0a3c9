"""The diagnosis of a stored study: its best configuration's train and validation values (the
last epoch's metrics kept with the trial), the target, the gate's trivial baseline, and the
evidence the next steps rest on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sweeper.catalog import train_counterpart
from sweeper.definition import Definition, parse_definition
from sweeper.diagnosis._advice import importance, next_steps
from sweeper.diagnosis._text import (
    confirmation_lines,
    diagnosis_lines,
    front_confirmation_lines,
    stage_lines,
    stage_rows,
)
from sweeper.diagnosis._verdict import Diagnosis, bounded, judge
from sweeper.store import Confirmed, Ranking, attrs, rank, study_ranking

# what the gate's short fit measured as the trivial baseline, for each objective
BASELINES = {
    "val_accuracy": ("majority-class accuracy",),
    "val_loss": ("predict-the-prior loss", "predict-the-mean loss"),
}


def stored_definition(study: Any) -> Definition | None:
    """The definition the study was run from (kept with it), or None if it cannot be read."""
    text = attrs.get_study_attr(study, attrs.DEFINITION)
    if not text:
        return None
    try:
        return parse_definition(str(text))
    except Exception:
        return None


def gate_baseline(gate: dict[str, Any] | None, metric: str) -> float | None:
    """The trivial baseline the gate measured for `metric` (majority-class accuracy, the
    prior's or the mean's loss), or None."""
    for f in (gate or {}).get("findings", []):
        measured = f.get("measured")
        if f.get("probe") == "short_fit_vs_baseline" and isinstance(measured, dict):
            for key in BASELINES.get(metric, ()):
                if isinstance(measured.get(key), (int, float)):
                    return float(measured[key])
    return None


def diagnose(
    study: Any, spec: Definition | None = None, ranking: Ranking | None = None
) -> Diagnosis | None:
    """The bias/variance verdict on the study's best configuration, or None before a trial
    completes (or when its definition cannot be read)."""
    spec = spec or stored_definition(study)
    if spec is None:
        return None
    ranking = ranking or study_ranking(study)
    best = ranking.best()
    if best is None or best.values is None:
        return None
    metric = spec.objective.metric
    maximize = spec.objective.direction == "maximize"
    metrics = dict(best.user_attrs.get(attrs.METRICS) or {})
    val = float(metrics.get(metric, best.values[0]))
    names = train_counterpart(metric)
    train_metric = next((n for n in names if n in metrics), None)
    target = spec.objective.target
    if target is None and bounded(metric, maximize):
        target = 1.0
    out = Diagnosis(metric=metric, verdict=None, train=None, val=val, target=target)
    out.trial, out.train_metric = best.number, train_metric
    if train_metric is None:
        out.note = (
            f"no verdict: the best trial (#{best.number}) reported no {names[0]} at its last "
            f"epoch; measure {names[0]} on the train split the way the validation split is "
            f"(in eval mode) and report it: in a fit loop, in its last trial.report; with "
            f"Lightning's SweeperCallback, self.log('{names[0]}', value, on_epoch=True) in "
            f"on_validation_epoch_end (the Hugging Face SweeperCallback reports what "
            f"evaluate() returns, which holds no train-split metric)"
        )
        out.next = [out.note]
        return out
    out.train = float(metrics[train_metric])
    if target is None:
        out.note = (
            f"no verdict: {metric} has no natural best value; set objective.target to the "
            f"{metric} you aim for (a human's, or the best known), e.g. target: "
            f"{_suggest(out.train, maximize):.4g}"
        )
        out.next = [out.note]
        return out
    out.baseline = gate_baseline(attrs.gate_of(study), metric)
    out.verdict, out.bias, out.variance, out.tolerance = judge(
        out.train, val, target, out.baseline, maximize
    )
    out.bias, out.variance = round(out.bias, 6), round(out.variance, 6)
    out.tolerance = round(out.tolerance, 6)
    out.importance = importance(ranking.candidates, maximize)
    out.next = next_steps(out.verdict, spec, best, maximize, out.tolerance, out.importance)
    return out


def _suggest(train: float, maximize: bool) -> float:
    """A target to start from: a tenth better than the train split reached."""
    return train * (1.1 if maximize else 0.9) if train else 0.0


def saved_or_fresh(study: Any, ranking: Ranking | None = None) -> Diagnosis | None:
    """The diagnosis the last run kept with the study, else one made now."""
    kept = attrs.get_study_attr(study, attrs.DIAGNOSIS)
    if isinstance(kept, dict):
        return Diagnosis.from_dict(kept)
    return diagnose(study, ranking=ranking)


@dataclass
class AfterSearch:
    """A study's end as the user reads it: its stages, its trials ranked (with the
    confirmations), and the verdict on its best."""

    metrics: list[str]  # every objective, in order (several: a front)
    ranking: Ranking
    stages: list[dict[str, Any]] = field(default_factory=list)
    diagnosis: Diagnosis | None = None

    @property
    def metric(self) -> str:
        """The first objective's metric (the one objective, the accuracy-like one)."""
        return self.metrics[0]

    @property
    def confirmed(self) -> Confirmed | None:
        """The confirmation of the best configuration, if it was confirmed."""
        best = self.ranking.best()
        return self.ranking.confirmed.get(best.number) if best is not None else None

    def lines(self) -> list[str]:
        """The stages, the confirmation and the verdict, as lines ('- ' starts a list item)."""
        out = stage_lines(self.stages)
        if len(self.metrics) > 1:
            out += front_confirmation_lines(self.ranking, self.metrics)
        else:
            out += confirmation_lines(self.ranking, self.metric)
        if self.diagnosis is not None:
            out += diagnosis_lines(self.diagnosis)
        return out


def after_search(
    study: Any, spec: Definition | None = None, fresh: bool = False, ranking: Ranking | None = None
) -> AfterSearch:
    """The study's `AfterSearch`, from `ranking` (its trials ranked by the caller) or from one
    read of every trial. `fresh`: make the diagnosis now and keep it with the study (the end
    of a run), else read the kept one."""
    if ranking is None:
        trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
        ranking = rank(trials, study.directions[0].name == "MAXIMIZE")
    trials = ranking.trials
    system = study._storage.get_study_system_attrs(study._study_id)
    stages = system.get(attrs.STAGES) or []
    rows = stage_rows(trials, stages, system.get(attrs.NARROWED) or {}) if stages else []
    if fresh:
        diagnosis = diagnose(study, spec, ranking)
        if diagnosis is not None:
            attrs.set_study_attr(study, attrs.DIAGNOSIS, diagnosis.to_dict())
    else:
        diagnosis = saved_or_fresh(study, ranking)
    return AfterSearch(list(study.metric_names or ["value"]), ranking, rows, diagnosis)
