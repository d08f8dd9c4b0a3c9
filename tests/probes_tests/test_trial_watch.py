"""The per-trial checks on own fit loops that crashed sweeper or misled the user: a float64
model, parameters frozen after `trial.watch`, an optimizer left holding frozen parameters, a
step that applies nothing although the gradients are fine, module names with underscores,
and a policy network whose first forward is one row."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from sweeper.orchestrator._runner import TrialRunner
from sweeper.probes import Settings
from tests.conftest import run_trial

TASK = """
import torch
from torch import nn
import torch.nn.functional as F
from sweeper.task import Task

MODE = {mode!r}
g = torch.Generator().manual_seed(0)
X = torch.randn(512, 8, generator=g)
Y = (X[:, 0] > 0).long()


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self._stem = nn.Linear(8, 32)
        self._head_out = nn.Linear(32, 2)

    def forward(self, x):
        return self._head_out(torch.relu(self._stem(x)))


def task():
    def fit(params, trial):
        model = Net()
        if MODE == "float64":
            model = model.double()
        opt = torch.optim.SGD(model.parameters(), lr=params["lr"])
        trial.watch(model, opt)
        if MODE == "freeze_after_watch":
            for p in model._stem.parameters():
                p.requires_grad_(False)
        if MODE == "frozen_optimizer":
            for p in model._stem.parameters():
                p.requires_grad_(False)
            opt = torch.optim.SGD(model._stem.parameters(), lr=params["lr"])  # frozen ones
            for p in model._stem.parameters():  # then the model is unfrozen the wrong way
                p.requires_grad_(True)
            for p in model._head_out.parameters():
                p.requires_grad_(True)
            model._stem.requires_grad_(False)
            trial.watch(model, opt)
        if MODE == "one_row_first":
            with torch.no_grad():
                model(X[:1])  # act on one observation before any batch
        for epoch in range(trial.epochs):
            for xb, yb in zip(X.split(32), Y.split(32)):
                xb = xb.double() if MODE == "float64" else xb
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                if MODE == "lr_zero_step":
                    for group in opt.param_groups:
                        group["lr"] = 0.0  # the step does nothing; the gradients are fine
                trial.step(loss)
                opt.step()
            with torch.no_grad():
                acc = (model(X.double() if MODE == "float64" else X).argmax(1) == Y).float().mean()
            trial.report({{"val_accuracy": float(acc)}})

    return Task(fit=fit, num_classes=2)
"""

PARAMS = {"lr": 0.05, "batch_size": 32, "dropout": 0.0, "init": "none"}


def _trial(tmp_path: Path, mode: str, epochs: int = 3) -> tuple[Any, Any]:
    (tmp_path / f"watch_{mode}.py").write_text(TASK.format(mode=mode))
    sys.path.insert(0, str(tmp_path))
    try:
        runner = TrialRunner(
            f"watch_{mode}:task", {}, [str(tmp_path)], Settings().model_dump(), True, 1
        )
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # torch's "degrees of freedom" warning
            first, metrics, _, last = run_trial(runner, 0, PARAMS, epochs)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(f"watch_{mode}", None)
    findings = [*first.findings, *last.findings]
    return last, findings


@pytest.mark.parametrize("mode", ["float64", "freeze_after_watch", "one_row_first"])
def test_trial_watch_healthy_loops_run_without_a_crash_or_a_stop(tmp_path: Path, mode: str) -> None:
    last, findings = _trial(tmp_path, mode)
    assert last.error is None and last.stopped is None, (last.error, last.stopped)
    assert last.done
    assert not [f for f in findings if f.verdict in ("fail", "warn")], findings


def test_trial_watch_optimizer_holding_only_frozen_parameters_says_frozen_not_rebuilt(
    tmp_path: Path,
) -> None:
    last, _ = _trial(tmp_path, "frozen_optimizer")
    assert last.stopped is not None and last.stopped.startswith("stale_optimizer"), last
    assert "frozen" in last.stopped and "rebuilt" not in last.stopped


def test_trial_watch_step_that_applies_nothing_is_not_blamed_on_zero_gradients(
    tmp_path: Path,
) -> None:
    last, _ = _trial(tmp_path, "lr_zero_step")
    assert last.stopped is not None, last
    assert "gradients are all zero" not in last.stopped
    assert "reach the weights" in last.stopped or "lr" in last.stopped


def test_trial_watch_hints_name_modules_exactly_as_pytorch_does() -> None:
    from sweeper.probes._finding import fmt

    assert fmt({"_blocks.1._se_expand": 3.0}) == "_blocks.1._se_expand 3"
