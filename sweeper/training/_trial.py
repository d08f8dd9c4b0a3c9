"""What a trial's training code talks to: `trial.report`, `trial.watch`, `trial.step`.

sweeper's own loop is written against this same handle (`builtin_fit`), so a user's `fit`
function and the built-in loop go through one runner, one report path and one set of probes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn

from sweeper.errors import TrialStopped
from sweeper.training._loop import Data, evaluate, start_run, train_epoch

FitFn = Callable[[dict[str, Any], "Trial"], Any]


class Monitor(Protocol):
    """Per-trial probes, attached through hooks; any method may raise TrialStopped."""

    def watch(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None: ...
    def on_loss(self, loss: torch.Tensor) -> None: ...
    def close(self) -> None: ...


class Trial:
    """The handle a ``fit(params, trial)`` function gets.

    params: the trial's hyperparameters (searched and fixed). device: where to train
    (``cuda:0`` under Ray's GPU mask, else cpu). number: the Optuna trial number (a good
    seed). epochs: how many times to call ``report`` (the definition's ``budget.epochs``).

    Built outside sweeper (``sweeper.Trial(params)``) it runs a fit function locally: reports
    are kept in ``history`` and nothing stops the loop.
    """

    def __init__(
        self,
        params: dict[str, Any],
        number: int = 0,
        device: torch.device | str = "cpu",
        epochs: int = 1,
        reporter: Callable[[dict[str, float]], None] | None = None,
        monitor: Monitor | None = None,
    ) -> None:
        self.params = dict(params)
        self.number = number
        self.device = torch.device(device)
        self.epochs = epochs
        self.history: list[dict[str, float]] = []
        self._reporter = reporter
        self._monitor = monitor

    def report(self, metrics: dict[str, Any]) -> None:
        """Send this epoch's metrics to the driver. Returns when the trial should go on;
        raises ``sweeper.TrialStopped`` when the pruner or a probe ended it."""
        if not isinstance(metrics, dict) or not metrics:
            raise TypeError("trial.report takes a dict of metric name -> number")
        clean: dict[str, float] = {}
        for key, value in metrics.items():
            try:
                clean[str(key)] = float(value)
            except (TypeError, ValueError):
                raise TypeError(f"trial.report: {key!r} = {value!r} is not a number") from None
        self.history.append(clean)
        if self._reporter is not None:
            self._reporter(clean)

    def watch(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Attach the per-trial probes to your model and optimizer through hooks: activation
        statistics on the first forward pass, finite gradients and the update/weight ratio
        at optimizer steps. A probe that fails raises ``TrialStopped`` from the hook."""
        if self._monitor is not None:
            self._monitor.watch(model, optimizer)

    def step(self, loss: torch.Tensor) -> None:
        """Optional, once per training step: adds the loss checks (not finite, growing far
        above its start) to what ``watch`` does."""
        if self._monitor is not None:
            self._monitor.on_loss(loss.detach())

    def close(self) -> None:
        if self._monitor is not None:
            self._monitor.close()


def builtin_fit(task: Any, data: Data) -> FitFn:
    """sweeper's own loop as a fit function: the task's model, data, hooks and the params'
    precision, clipping, accumulation and schedule."""

    def fit(params: dict[str, Any], trial: Trial) -> None:
        run = start_run(task, data, params, trial.device, seed=trial.number, epochs=trial.epochs)
        trial.watch(run.model, run.optimizer)
        for _ in range(trial.epochs):
            train_loss = train_epoch(run, on_loss=trial.step)
            if not math.isfinite(train_loss):
                raise TrialStopped(f"train loss became {train_loss} (not finite)")
            trial.report({"train_loss": train_loss, **evaluate(run)})

    return fit
