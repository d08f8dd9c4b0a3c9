"""Narrowing a later stage's space, the sampler that keeps narrowed categoricals, the verdict's
rule, the ranking of confirmed configurations, and the definition's new sections."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from sweeper.catalog import train_counterpart
from sweeper.definition import parse_definition
from sweeper.diagnosis import bounded, confirmation_lines, judge
from sweeper.errors import DefinitionError
from sweeper.search import NarrowedSampler, narrow, top_share
from sweeper.store import rank

LR = FloatDistribution(1e-4, 1e-1, log=True)


def test_narrow_keeps_log_span_of_the_top_trials_widened_inside_the_range() -> None:
    dists = {
        "lr": LR,
        "dropout": FloatDistribution(0.0, 0.5),
        "hidden": IntDistribution(16, 256, step=16),
        "bs": CategoricalDistribution([32, 64, 128]),
    }
    top = [
        {"lr": 1e-3, "dropout": 0.1, "hidden": 64, "bs": 64},
        {"lr": 4e-3, "dropout": 0.2, "hidden": 96, "bs": 64},
    ]
    out, kept = narrow(dists, top)
    lr = out["lr"]
    assert isinstance(lr, FloatDistribution) and lr.log
    width = math.log(4e-3 / 1e-3)
    margin = max(0.1 * width, 0.05 * math.log(1e3))  # the widening, in log space
    assert lr.low == pytest.approx(1e-3 * math.exp(-margin))
    assert lr.high == pytest.approx(4e-3 * math.exp(margin))
    d = out["dropout"]
    assert d.low == pytest.approx(0.1 - 0.025) and d.high == pytest.approx(0.2 + 0.025)
    h = out["hidden"]
    assert isinstance(h, IntDistribution) and h.step == 16
    assert h.low <= 64 and h.high >= 96 and (h.low - 16) % 16 == 0 and (h.high - 16) % 16 == 0
    assert out["bs"] == dists["bs"] and kept == {"bs": [64]}  # choices cannot change in Optuna
    # at the edge of the range: clipped to it, never beyond
    edge, _ = narrow({"lr": LR}, [{"lr": 1e-1}])
    assert edge["lr"].high == pytest.approx(1e-1) and edge["lr"].low < 1e-1


def test_top_share_is_the_best_share_of_complete_trials() -> None:
    trials = [
        create_trial(value=v, params={"lr": 1e-3}, distributions={"lr": LR}) for v in (3, 1, 2, 5)
    ]
    trials.append(
        create_trial(state=TrialState.PRUNED, params={"lr": 1e-3}, distributions={"lr": LR})
    )
    got = top_share(trials, 0.5, [True])
    assert [t.value for t in got] == [5, 3]
    assert [t.value for t in top_share(trials, 0.01, [False])] == [1]


def test_narrowed_sampler_draws_only_the_kept_choices() -> None:
    study = optuna.create_study(
        sampler=NarrowedSampler(optuna.samplers.TPESampler(seed=0), {"bs": [32, 128]}, seed=0)
    )
    for _ in range(30):
        trial = study.ask({"bs": CategoricalDistribution([32, 64, 128]), "lr": LR})
        study.tell(trial, trial.params["lr"])
    assert {t.params["bs"] for t in study.trials} == {32, 128}


@pytest.mark.parametrize(
    ("train", "val", "verdict"),
    [
        (1.0, 0.80, "high_variance"),
        (0.45, 0.43, "high_bias"),
        (0.70, 0.50, "high_bias_and_variance"),
        (0.99, 0.975, "good_fit"),
    ],
)
def test_verdict_reads_bias_against_target_and_variance_against_train(
    train: float, val: float, verdict: str
) -> None:
    got, bias, variance, tol = judge(train, val, target=1.0, baseline=0.1, maximize=True)
    assert got == verdict
    assert tol == pytest.approx(0.045)  # 5% of the way from the baseline to the target
    assert bias == pytest.approx(max(0.0, 1.0 - train))
    assert variance == pytest.approx(max(0.0, train - val))


def test_verdict_for_a_loss_and_the_metrics_that_have_a_natural_target() -> None:
    got, bias, variance, _ = judge(0.9, 1.6, target=0.5, baseline=2.3, maximize=False)
    assert got == "high_bias_and_variance" and bias == pytest.approx(0.4)
    assert variance == pytest.approx(0.7)
    assert bounded("val_accuracy", True) and bounded("eval_f1", True)
    assert not bounded("val_loss", False) and not bounded("val_bleu", True)
    assert train_counterpart("val_accuracy") == ["train_accuracy"]
    assert train_counterpart("val_loss") == ["train_eval_loss", "train_loss"]
    assert train_counterpart("eval_f1") == ["train_f1"] and train_counterpart("auc") == [
        "train_auc"
    ]


def test_ranking_puts_the_best_confirmed_mean_first_over_the_luckiest_run() -> None:
    def t(number: int, value: float, **attrs: object) -> optuna.trial.FrozenTrial:
        trial = create_trial(
            value=value,
            params={"lr": 1e-3 * (number + 1)},
            distributions={"lr": LR},
            user_attrs=attrs,
        )
        trial.number = number
        return trial

    trials = [t(0, 0.99), t(1, 0.97), t(2, 0.90)]
    trials += [t(3, 0.93, **{"sweeper:confirms": 0}), t(4, 0.95, **{"sweeper:confirms": 0})]
    trials += [t(5, 0.965, **{"sweeper:confirms": 1}), t(6, 0.967, **{"sweeper:confirms": 1})]
    ranking = rank(trials, maximize=True)
    best = ranking.best()
    assert best is not None and best.number == 1  # the lucky 0.99 averages 0.94 on new seeds
    assert [x.number for x in ranking.ordered()] == [1, 0, 2]
    c = ranking.confirmed[0]
    assert c.mean == pytest.approx(0.94) and c.std == pytest.approx(math.sqrt(2e-4))
    assert c.values == [0.93, 0.95] and c.search_value == 0.99
    said = " ".join(confirmation_lines(ranking, "val_accuracy"))
    assert "single-seed best (trial 0, 0.9900) was lucky" in said
    assert "trial 1's configuration is the best" in said

    # the best search run's new seeds all stopped by probes, or a single new seed: words, no
    # claim about luck
    stopped = [t(0, 0.99), t(1, 0.97), t(2, 0.9, **{"sweeper:confirms": 0})]
    stopped[2].state = TrialState.PRUNED
    stopped[2].values = None
    lines = confirmation_lines(rank(stopped, maximize=True), "val_accuracy")
    assert not any("lucky" in line or "held up" in line for line in lines)
    one = rank([t(0, 0.99), t(1, 0.97, **{"sweeper:confirms": 0})], maximize=True)
    assert "on one new seed" in " ".join(confirmation_lines(one, "val_accuracy"))


def test_stages_confirm_and_target_in_the_definition() -> None:
    base = """
name: s
task: m:t
search: {lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}, batch_size: 32, dropout: 0.0}
"""
    spec = parse_definition(
        base + "stages: [{trials: 10, epochs: 2}, {trials: 4, epochs: 6, narrow: 0.3}]\n"
        "confirm: {top: 2, seeds: 3}\nobjective: {metric: val_accuracy, target: 0.98}\n"
    )
    assert (spec.budget.trials, spec.budget.epochs) == (14, 6)
    assert spec.stages is not None and spec.stages[0].narrow == 0.25
    assert spec.confirm is not None and (spec.confirm.top, spec.confirm.seeds) == (2, 3)
    assert spec.objective.target == 0.98
    for bad, says in (
        ("budget: {trials: 3}\nstages: [{trials: 2, epochs: 2}]", "leave budget.trials out"),
        ("stages: [{trials: 2, epochs: 5}, {trials: 1, epochs: 2}]", "at least as long"),
        ("stages: [{trials: 2, epochs: 5, narrow: 0}]", "narrow"),
        ("stages: []", "stages"),
        ("confirm: {top: 0}", "confirm.top"),
    ):
        with pytest.raises(DefinitionError, match=says):
            parse_definition(base + bad + "\n")
