"""The silent-bug corpus from public reports (`silent_bugs.py`): each buggy loop is named by
its check, run as a user runs a `fit` locally (`sweeper.Trial`, checks on), and its fixed
twin runs to the end with no stop and no finding of that check."""

from __future__ import annotations

import pytest

import sweeper
from tests.probes_tests.silent_bugs import CASES, EPOCHS


def _run(name: str, fixed: bool) -> tuple[sweeper.Trial, str | None]:
    trial = sweeper.Trial({"lr": 1e-3}, epochs=EPOCHS)
    try:
        CASES[name].run(trial, fixed)
    except sweeper.TrialStopped as stop:
        return trial, stop.reason
    finally:
        trial.close()
    return trial, None


def _said(trial: sweeper.Trial) -> str:
    return "; ".join(f"{f.probe} {f.verdict}: {f.hint}" for f in trial.findings if f.hint)


def test_the_corpus_has_twenty_reports_and_the_classes_asked_for() -> None:
    assert len(CASES) >= 20
    assert all(c.source.startswith("https://") for c in CASES.values())
    assert len({c.source for c in CASES.values()}) == len(CASES)
    classes = {c.check for c in CASES.values()}
    assert {
        "eval_stochastic",  # stochastic layers at evaluation
        "eval_before_train",  # state that depends on train/eval order
        "train_not_called",  # freezing that does not take effect
        "frozen_updated",
        "unheld_params",  # unfreezing that does not take effect, parameters replaced
        "autocast_coverage",  # precision not applied where asked
        "stale_optimizer",  # updates silently dropped
        "grad_not_zeroed",
    } <= classes


@pytest.mark.parametrize("name", sorted(CASES))
def test_silent_bug_is_named_and_its_fix_spared(name: str) -> None:
    check = CASES[name].check
    buggy, stopped = _run(name, fixed=False)
    named = [f for f in buggy.findings if f.probe == check and f.verdict in ("fail", "warn")]
    assert named, f"{name}: {check} not named (stopped: {stopped}); said: {_said(buggy)}"
    first = next(f for f in buggy.findings if f.verdict in ("fail", "warn"))
    assert first.probe == check, f"{name}: {first.probe} came first: {_said(buggy)}"

    fixed, stopped = _run(name, fixed=True)
    assert stopped is None, f"{name} fixed was stopped: {stopped}"
    assert len(fixed.history) == EPOCHS
    assert not [f for f in fixed.findings if f.probe == check and f.verdict != "pass"], _said(fixed)
    assert len([f for f in fixed.findings if f.verdict == "warn"]) <= 1, _said(fixed)
