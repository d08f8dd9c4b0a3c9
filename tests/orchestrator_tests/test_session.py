"""A trial's code in its thread, handed to the driver one report at a time (no Ray)."""

from __future__ import annotations

from typing import Any

import pytest

import sweeper
from sweeper.orchestrator._session import Session
from sweeper.probes import TrialMonitor


def _session(fn: Any, monitor: Any = None) -> Session:
    return Session(
        fn,
        {"lr": 0.1},
        lambda reporter: sweeper.Trial({"lr": 0.1}, 7, "cpu", 3, reporter, monitor),
        stopped=lambda: monitor.stopped if monitor is not None else None,
    )


def test_session_hands_over_each_report_and_stops_the_code_when_told() -> None:
    seen: list[str] = []

    def fit(params: dict[str, Any], trial: sweeper.Trial) -> None:
        try:
            for epoch in range(trial.epochs):
                trial.report({"val_loss": 1.0 / (epoch + 1)})
                seen.append(f"went on after {epoch}")
        except sweeper.TrialStopped as e:
            seen.append(f"stopped: {e.reason}")
            raise

    s = _session(fit)
    first = s.start()
    assert first.kind == "report" and first.metrics == {"val_loss": 1.0}
    assert seen == []  # the code waits for the driver's answer
    assert s.resume().metrics == {"val_loss": 0.5}
    assert s.stop()
    assert seen == ["went on after 0", "stopped: the driver ended the trial"]


def test_session_reports_errors_early_returns_and_bad_metrics_as_events() -> None:
    def boom(params: dict[str, Any], trial: sweeper.Trial) -> None:
        trial.report({"acc": 0.5})
        raise ValueError("shapes do not match")

    s = _session(boom)
    assert s.start().kind == "report"
    event = s.resume()
    assert event.kind == "error" and "shapes do not match" in str(event.error)

    assert _session(lambda p, t: None).start().kind == "done"

    bad = _session(lambda p, t: t.report({"acc": "high"}))
    event = bad.start()
    assert event.kind == "error" and "'acc' = 'high' is not a number" in str(event.error)


def test_watch_stops_a_diverging_user_loop_and_a_swallowed_stop_still_counts() -> None:
    from sweeper.examples.own_loop import own_loop_task

    task = own_loop_task()
    assert task.fit is not None
    params = {"lr": 8.0, "batch_size": 64, "dropout": 0.0, "max_shift": 1}

    monitor = TrialMonitor(first_forward=True)
    s = Session(
        task.fit,
        params,
        lambda reporter: sweeper.Trial(params, 0, "cpu", 3, reporter, monitor),
        stopped=lambda: monitor.stopped,
    )
    event = s.start()
    assert event.kind == "stopped"
    assert event.reason.split(":")[0] in ("loss_growth", "update_ratio", "nonfinite_grad")
    assert any(f.verdict == "fail" for f in monitor.findings)

    def stubborn(p: dict[str, Any], trial: sweeper.Trial) -> None:
        import torch

        model = torch.nn.Linear(4, 1)
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        trial.watch(model, opt)
        for _ in range(3):
            try:
                model(torch.full((2, 4), float("nan"))).sum().backward()
                opt.step()
            except sweeper.TrialStopped:
                pass  # user code that catches everything
            trial.report({"loss": 1.0})

    m2 = TrialMonitor()
    event = _session(stubborn, m2).start()
    assert event.kind == "stopped" and event.reason.startswith("nonfinite_input")


@pytest.mark.parametrize("probes", [True, False])
def test_trial_runs_a_fit_function_locally(probes: bool) -> None:
    from sweeper.examples.own_loop import own_loop_task

    task = own_loop_task()
    assert task.fit is not None
    params = {"lr": 0.05, "batch_size": 64, "dropout": 0.0, "max_shift": 1}
    trial = sweeper.Trial(
        params, epochs=2, monitor=TrialMonitor(first_forward=True) if probes else None
    )
    task.fit(params, trial)
    assert len(trial.history) == 2 and trial.history[-1]["val_accuracy"] > 0.8
