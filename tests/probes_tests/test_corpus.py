"""The healthy corpus of real architectures passes the gate: no failure, and every warning or
skip says why. A gate that fails a healthy project gets switched off."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import sweeper
from sweeper import Task
from tests.probes_tests.corpus import CORPUS

pytest.importorskip("transformers", reason="the corpus's Hugging Face models need transformers")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def _table(report: sweeper.Report) -> str:
    return "\n".join(
        f"{f.probe}: {f.verdict} {sweeper.probes.fmt(f.measured)} {f.hint}" for f in report.findings
    )


def test_corpus_has_the_architectures_the_issue_asks_for() -> None:
    assert len(CORPUS) >= 25


@pytest.mark.parametrize("case", CORPUS, ids=[c.__name__ for c in CORPUS])
def test_corpus_model_passes_the_gate_without_a_failure(case: Callable[[], Task]) -> None:
    report = sweeper.probe(case())
    assert not report.failures, _table(report)
    assert len(report.warnings) <= 1, _table(report)
    for f in report.findings:
        if f.verdict in ("warn", "skip"):
            assert f.hint or isinstance(f.measured, str), (
                f"{f.probe} says nothing: {_table(report)}"
            )


@pytest.mark.parametrize("case", CORPUS, ids=[c.__name__ for c in CORPUS])
def test_corpus_model_trains_three_epochs_in_sweepers_loop_without_a_trial_warning(
    case: Callable[[], Task],
) -> None:
    """The per-trial monitor agrees with the gate: a model the gate passes is neither stopped
    nor warned while it trains (three epochs at the gate's reference params: `at_chance` is
    judged after the second)."""
    import torch

    from sweeper.probes import (
        REFERENCE_PARAMS,
        Context,
        TrialMonitor,
        chance_levels,
        untrained_loss,
    )
    from sweeper.training import Data, builtin_fit

    task = case()
    cpu = torch.device("cpu")
    data = Data.of(task, cpu)
    params = dict(REFERENCE_PARAMS)
    monitor = TrialMonitor(
        expected_loss=untrained_loss(task),
        chance=chance_levels(Context(task, data, params, cpu)),
        epochs=3,
    )
    trial = sweeper.Trial(params, epochs=3, monitor=monitor)
    try:
        builtin_fit(task, data)(params, trial)
    except sweeper.TrialStopped:
        pass
    finally:
        trial.close()
    said = "; ".join(f"{f.probe} {f.verdict}: {f.hint}" for f in monitor.findings if f.hint)
    assert monitor.stopped is None, said
    assert not [f for f in monitor.findings if f.verdict in ("warn", "fail")], said
