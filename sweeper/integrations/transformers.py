"""`SweeperCallback(trial)`: a Hugging Face ``transformers.Trainer`` run as a sweeper trial.

Inside a task's ``fit(params, trial)``::

    args = TrainingArguments(..., num_train_epochs=trial.epochs, eval_strategy="epoch")
    Trainer(model, args, ..., callbacks=[SweeperCallback(trial)]).train()

The callback watches the model and the optimizer the Trainer built with the per-trial probes,
reports the evaluation metrics at each ``on_evaluate`` (the ``eval_`` names as Hugging Face
gives them, plus ``train_loss``, the mean training loss logged since the evaluation before),
and when the pruner or a probe stops the trial it sets ``control.should_training_stop``, lets
the Trainer wind down and re-raises ``TrialStopped`` so the trial is recorded as stopped, with
its reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from sweeper.errors import TrialStopped
from sweeper.integrations._metrics import numeric_metrics
from sweeper.training import Trial

try:
    from transformers import TrainerCallback
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "sweeper.integrations.transformers needs transformers and accelerate: "
        "pip install 'sweeper[transformers]'"
    ) from e

_NOT_METRICS = ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "epoch")


def inner_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer under accelerate's wrapper (``AcceleratedOptimizer``): its step
    hooks are the ones that fire when the update happens."""
    while not type(optimizer).__module__.startswith("torch.") and isinstance(
        getattr(optimizer, "optimizer", None), torch.optim.Optimizer
    ):
        optimizer = optimizer.optimizer
    return optimizer


class SweeperCallback(TrainerCallback):
    """A ``transformers.TrainerCallback`` that makes a ``Trainer`` one sweeper trial.

    trial: the ``sweeper.Trial`` the task's ``fit`` was given.
    metrics: the names to report (``eval_loss``, ``eval_accuracy``, ...; default: every number
        ``evaluate`` returns except its timings), so ``objective.metric`` can be any of them.

    ``stopped``: the ``TrialStopped`` that ended training, re-raised at ``on_train_end``.
    """

    def __init__(self, trial: Trial, metrics: str | Iterable[str] | None = None) -> None:
        """See the class docstring."""
        self.trial = trial
        self.metrics = (
            [metrics] if isinstance(metrics, str) else None if metrics is None else list(metrics)
        )
        self.stopped: TrialStopped | None = None
        self._logged = 0  # entries of state.log_history already read for train_loss

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Watch the model and the optimizer the Trainer built."""
        model, optimizer = kwargs.get("model"), kwargs.get("optimizer")
        self.trial._trained_by("transformers")
        if model is not None and optimizer is not None:
            self.trial.watch(model, inner_optimizer(optimizer))

    def _train_loss(self, state: Any) -> float | None:
        """The mean of the training losses the Trainer logged since the last evaluation."""
        new = state.log_history[self._logged :]
        self._logged = len(state.log_history)
        losses = [float(e["loss"]) for e in new if "loss" in e and "eval_loss" not in e]
        return sum(losses) / len(losses) if losses else None

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict[str, Any] | None = None, **_: Any
    ) -> None:
        """Report the evaluation's metrics; a stop ends training after this step."""
        if self.stopped is not None or not metrics:
            return
        found = numeric_metrics({k: v for k, v in metrics.items() if k not in _NOT_METRICS}, None)
        train_loss = self._train_loss(state)
        if train_loss is not None:
            found.setdefault("train_loss", train_loss)
        if self.metrics is not None:
            found = numeric_metrics(found, self.metrics)
        try:
            self.trial.report(found)
        except TrialStopped as stop:
            self.stopped = stop
            control.should_training_stop = True

    def on_train_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        """Training is over: a stop is raised now, so the trial is recorded as stopped."""
        self.trial.close()
        if self.stopped is not None:
            raise self.stopped
