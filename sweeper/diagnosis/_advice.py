"""The next steps after a verdict, from the study's own evidence: where the best
configuration sits in each searched range, whether its curve was still improving at the last
epoch, and which params mattered most (Optuna's `optuna.importance`)."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial

from sweeper.definition import Definition, FixedParam, FloatParam, IntParam

CAPACITY = ("hidden", "width", "channels", "layers", "depth", "units", "d_model", "embed", "size")
REGULARIZERS = ("dropout", "weight_decay", "wd", "l2", "label_smoothing")
EDGE = 0.1  # within this share of a range's end (log scale where the param is log): at its edge


def _role(name: str, words: Sequence[str]) -> bool:
    low = name.lower()
    return any(w in low for w in words) and name != "batch_size"


def edge(spec: Definition, name: str, value: Any) -> str | None:
    """'top' or 'bottom' when `value` sits at that end of the param's searched range."""
    p = spec.search.params().get(name)
    if not isinstance(p, (FloatParam, IntParam)) or p.high <= p.low:
        return None
    f = math.log if p.log else float
    try:
        at = (f(float(value)) - f(p.low)) / (f(p.high) - f(p.low))
    except (TypeError, ValueError):
        return None
    return "top" if at >= 1 - EDGE else "bottom" if at <= EDGE else None


def _range(spec: Definition, name: str) -> str:
    p = spec.search.params()[name]
    assert isinstance(p, (FloatParam, IntParam))
    return f"[{p.low:g}, {p.high:g}]"


def still_improving(trial: FrozenTrial, maximize: bool, tolerance: float) -> bool:
    """Whether the trial's last epochs were still getting better by more than `tolerance`/2."""
    values = [trial.intermediate_values[k] for k in sorted(trial.intermediate_values)]
    if len(values) < 3:
        return False
    tail = values[-max(2, len(values) // 4) :]
    gain = tail[-1] - tail[0] if maximize else tail[0] - tail[-1]
    return gain > tolerance / 2


def got_worse(trial: FrozenTrial, maximize: bool, tolerance: float) -> int | None:
    """The epoch (1-based) of the best validation value, when the last is worse by more than
    `tolerance`/2: validation turned while training went on."""
    items = sorted(trial.intermediate_values.items())
    if len(items) < 3:
        return None
    pick = max if maximize else min
    step, best = pick(items, key=lambda kv: kv[1])
    last = items[-1][1]
    worse = best - last if maximize else last - best
    return int(step) + 1 if worse > tolerance / 2 and step != items[-1][0] else None


def importance(trials: Sequence[FrozenTrial], maximize: bool) -> dict[str, float]:
    """Each searched param's share of the objective's variance over `trials` (fANOVA, Optuna's
    default evaluator, seeded); empty when there are too few trials to tell."""
    import optuna

    done = [t for t in trials if t.values is not None]
    if len(done) < 4:
        return {}
    if len(done[0].values) > 1:  # several objectives: the first's importance (the verdict's)
        firsts = []
        for t in done:
            one = copy.copy(t)
            one.values = [t.values[0]]
            firsts.append(one)
        done = firsts
    study = optuna.create_study(direction="maximize" if maximize else "minimize")
    study.add_trials(done)
    try:
        got = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0)
        )
    except (RuntimeError, ValueError):  # a single value per param, no variance to explain
        return {}
    return {k: round(float(v), 3) for k, v in got.items()}


@dataclass(frozen=True)
class Evidence:
    """What the next steps rest on: the definition, the best trial's params (fixed ones too)
    and which were searched, the best trial itself, the direction and the verdict's tolerance."""

    spec: Definition
    params: dict[str, Any]
    searched: list[str]
    best: FrozenTrial
    maximize: bool
    tolerance: float


def next_steps(
    verdict: str,
    spec: Definition,
    best: FrozenTrial,
    maximize: bool,
    tolerance: float,
    importances: dict[str, float],
) -> list[str]:
    """Concrete next moves for `verdict`, each with the evidence it rests on."""
    params = {n: p.value for n, p in spec.search.params().items() if isinstance(p, FixedParam)}
    params.update(best.params)
    searched = [n for n in best.params]
    seen = Evidence(spec, params, searched, best, maximize, tolerance)
    steps: list[str] = []
    if verdict in ("high_bias", "high_bias_and_variance"):
        steps += _bias_steps(seen)
    if verdict in ("high_variance", "high_bias_and_variance"):
        steps += _variance_steps(seen)
    if verdict == "good_fit":
        steps.append(
            "the best configuration is within tolerance of the target on train and on "
            "validation: raise objective.target to aim higher, or use it as it is "
            "(`sweeper best` prints it)"
        )
    lr = params.get("lr")
    if "lr" in searched and edge(spec, "lr", lr):
        steps.append(
            f"the best lr ({lr:.3g}) is at the {edge(spec, 'lr', lr)} of its range "
            f"{_range(spec, 'lr')}: widen the range that way"
        )
    if importances:
        top = ", ".join(f"{k} {v:.2f}" for k, v in list(importances.items())[:3])
        steps.append(f"the params that mattered most here (fANOVA importance): {top}")
    return steps


def _bias_steps(seen: Evidence) -> list[str]:
    spec, params, searched = seen.spec, seen.params, seen.searched
    out = []
    capacity = [n for n in searched if _role(n, CAPACITY)]
    at_top = [n for n in capacity if edge(spec, n, params[n]) == "top"]
    if at_top:
        out += [
            f"a bigger network: the best {n} ({params[n]}) is the top of its range "
            f"{_range(spec, n)}; larger kept winning, so widen {n}'s range upwards"
            for n in at_top
        ]
    elif capacity:
        out.append(
            f"a bigger network: the best {', '.join(f'{n}={params[n]}' for n in capacity)} did "
            "not reach the target on the train split; try more or wider layers than searched"
        )
    else:
        out.append(
            "a bigger network (more or wider layers): the model does not fit its own train "
            "split; search a capacity param (say `hidden`) or enlarge build_model's model"
        )
    epochs = spec.budget.epochs
    longer = f"train longer: budget.epochs {epochs} -> {2 * epochs}"
    if still_improving(seen.best, seen.maximize, seen.tolerance):
        longer += " (validation was still improving at the last epoch)"
    out.append(longer)
    regs = [n for n in searched if _role(n, REGULARIZERS)]
    for n in regs:
        if edge(spec, n, params[n]) != "bottom":
            out.append(
                f"less regularization: the best {n} is {params[n]:.3g}; lower its range "
                f"{_range(spec, n)}"
            )
    if not regs and float(params.get("dropout", 0) or 0) > 0:
        out.append(f"less regularization: dropout is fixed at {params['dropout']}; lower it")
    return out


def _variance_steps(seen: Evidence) -> list[str]:
    spec, params, searched = seen.spec, seen.params, seen.searched
    out = ["more training data, or augmentation of the data you have"]
    dropout = spec.search.params().get("dropout")
    if isinstance(dropout, (FloatParam, IntParam)) and "dropout" in searched:
        if edge(spec, "dropout", params["dropout"]) == "top":
            out.append(
                f"more regularization: the best dropout ({params['dropout']:.2f}) is the top of "
                f"its range {_range(spec, 'dropout')}; widen it upwards"
            )
        else:
            out.append(
                f"more regularization: the best dropout was {params['dropout']:.2f}; raise "
                "dropout's low end, or add weight decay"
            )
    else:
        fixed = float(params.get("dropout", 0) or 0)
        out.append(
            f"more regularization: dropout is fixed at {fixed:g}; search it "
            "(`dropout: {type: float, low: 0.2, high: 0.5}`: start at 20%, raise it while "
            "the model overfits), or add weight decay"
        )
    for n in searched:
        if _role(n, REGULARIZERS) and n != "dropout" and edge(spec, n, params[n]) == "top":
            out.append(f"the best {n} is the top of its range {_range(spec, n)}: widen it")
    turned = got_worse(seen.best, seen.maximize, seen.tolerance)
    if turned is not None:
        out.append(
            f"validation was best at epoch {turned} and got worse after: stop earlier, or "
            "regularize more"
        )
    capacity = [n for n in searched if _role(n, CAPACITY)]
    for n in capacity:
        if edge(spec, n, params[n]) == "bottom":
            out.append(f"a smaller network: the best {n} is the bottom of its range; lower it")
    return out
