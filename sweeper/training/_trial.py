"""What a trial's training code talks to: `trial.report`, `trial.watch`, `trial.step`.

sweeper's own loop is written against this same handle (`builtin_fit`), so a user's `fit`
function and the built-in loop go through one runner, one report path and one set of probes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn

from sweeper import _watchdog as watchdog
from sweeper.errors import TrialStopped
from sweeper.training._loop import (
    Data,
    evaluate,
    evaluate_train,
    load_run_state,
    run_state,
    start_run,
    train_epoch,
)

FitFn = Callable[[dict[str, Any], "Trial"], Any]
# The monitor a Trial built outside a study gets (set by `sweeper.Trial`'s first use, from
# the probes), so a fit tried locally is checked as a study's trial would be.
LOCAL_MONITOR: Callable[[int], Any] | None = None


class Monitor(Protocol):
    """Per-trial probes, attached through hooks; any method may raise TrialStopped."""

    def watch(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Attach to the model and optimizer the trial trains."""

    def on_report(self, metrics: dict[str, float]) -> None:
        """An epoch's reported metrics; may raise TrialStopped."""

    def on_loss(self, loss: torch.Tensor) -> None:
        """A step's loss, handed over by `trial.step`; may raise TrialStopped."""

    def close(self) -> None:
        """Remove every hook the monitor installed."""


class Trial:
    """The handle a ``fit(params, trial)`` function gets.

    params: the trial's hyperparameters (searched and fixed). device: where to train
    (``cuda:0`` under Ray's GPU mask, else cpu). number: the Optuna trial number (a good
    seed). epochs: how many times to call ``report`` (the definition's ``budget.epochs``).

    start_epoch: epochs already trained when the trial resumes from a checkpoint (else 0):
    loop ``for epoch in range(trial.start_epoch, trial.epochs)`` after ``trial.restore()``.

    Built outside sweeper (``sweeper.Trial(params, epochs=N)``) it runs a fit function
    locally: reports are kept in ``history``, and the per-trial checks a study would run
    watch the model given to ``watch`` (``findings``; a broken loop is stopped with
    ``sweeper.TrialStopped`` and its ``reason``, as in a study; ``checks=False`` turns them
    off).
    """

    def __init__(
        self,
        params: dict[str, Any],
        number: int = 0,
        device: torch.device | str = "cpu",
        epochs: int = 1,
        reporter: Callable[[dict[str, float]], None] | None = None,
        monitor: Monitor | None = None,
        saver: Any = None,
        resume: dict[str, Any] | None = None,
        checks: bool = True,
        costs: Any = None,
    ) -> None:
        """`saver`: a sweeper.checkpoint.Saver; `resume`: the checkpoint to resume from
        (as written by `checkpoint`: epoch, state, rng). `checks`: built outside a study
        (`sweeper.Trial(params, epochs=N)`), the trial runs the per-trial checks a study's
        fit trial gets; `findings` lists them and a stop raises TrialStopped. `costs`: a
        sweeper.training._costs.Costs whose measures join the last report's metrics."""
        if reporter is None and monitor is None and checks and LOCAL_MONITOR is not None:
            monitor = LOCAL_MONITOR(epochs)
        self.params = dict(params)
        self.number = number
        self.device = torch.device(device)
        self.epochs = epochs
        self.history: list[dict[str, float]] = []
        self._reporter = reporter
        self._monitor = monitor
        self._saver = saver
        self._resume = resume
        self.start_epoch = int(resume["epoch"]) if resume else 0
        self._model: nn.Module | None = None
        self._beats: list[Any] = []  # forward hooks that tell the watchdog of progress
        self._costs = costs

    @property
    def findings(self) -> list[Any]:
        """What the per-trial checks found so far (sweeper.Finding: probe, verdict, measured,
        expected, hint); empty without checks."""
        return list(getattr(self._monitor, "findings", []) or [])

    @property
    def in_study(self) -> bool:
        """Whether sweeper runs this trial (its reports go to a study), rather than a
        ``sweeper.Trial(params)`` built to run a fit function locally."""
        return self._reporter is not None

    @property
    def _epochs_done(self) -> int:
        return self.start_epoch + len(self.history)

    def checkpoint(self, state: Any) -> bool:
        """Hand sweeper your training state at the end of an epoch, before ``report``: a dict
        (model, optimizer, scheduler state dicts, anything picklable), or a function that
        returns one (called only when a checkpoint is due). sweeper writes it when one is due
        (``checkpoint.every_epochs``) with the RNG states; a re-run of this trial after a
        crash gets it back from ``restore``. Returns whether it was written."""
        epoch = self._epochs_done + 1  # the epoch about to be reported
        if self._saver is None or not self._saver.due(epoch, self.epochs):
            return False
        self._saver.checkpoint(epoch, state() if callable(state) else state)
        return True

    def restore(self) -> Any:
        """The state handed to ``checkpoint`` by the run this trial resumes, or None for a
        fresh start. Call it after building the model and optimizer (it also restores the
        random number generators), then train from ``trial.start_epoch``."""
        if not self._resume:
            return None
        from sweeper.checkpoint import restore_rng

        restore_rng(self._resume["rng"])
        return self._resume["state"]

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
        watchdog.beat()
        final = self._epochs_done + 1 >= self.epochs
        if self._costs is not None:
            self._costs.sample()
        if final and self._costs is not None:
            clean.update(self._measured_costs(clean))
        self.history.append(clean)
        if final and self._saver is not None and self._model is not None:
            self._saver.weights(self._model.state_dict())  # the trial's trained weights
        stopped: TrialStopped | None = None
        if self._monitor is not None:  # may raise TrialStopped: a diverged or dead trial
            try:
                self._monitor.on_report(clean)
            except TrialStopped as e:
                stopped = e  # the epoch that showed it is recorded too, then the trial stops
        if self._reporter is not None:
            waited = time.perf_counter()
            try:
                self._reporter(clean)
            except TrialStopped:
                if stopped is None:
                    raise
            finally:
                if self._costs is not None:
                    self._costs.waited += time.perf_counter() - waited
        if stopped is not None:
            raise stopped
        if self._reporter is None and final:
            self.close()  # a local trial's last epoch: the model is left without our hooks

    def watch(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Attach the per-trial probes to your model and optimizer through hooks: activation
        statistics on the first forward pass, finite gradients and the update/weight ratio
        at optimizer steps. A probe that fails raises ``TrialStopped`` from the hook. Call
        it once per model a trial trains (a GAN's generator and discriminator, an actor and
        a critic); without an optimizer (weights updated by hand) the checks that need none
        run. The first model's weights after the last epoch are kept for the best trials
        (``sweeper.load_best_model``)."""
        if self._model is None:
            self._model = model
            if self._costs is not None:
                self._costs.watch(model)
        if watchdog.current() is not None:  # an evaluation is progress too, not only steps
            self._beats.append(model.register_forward_hook(lambda *_: watchdog.beat()))
        if self._monitor is not None:
            self._monitor.watch(model, optimizer)

    def _measured_costs(self, reported: dict[str, float]) -> dict[str, float]:
        """The study's cost metrics of the watched model (those the code reports itself
        win), measured with the checks' hooks idle: their forwards are not the trial's."""
        monitors = [self._monitor, *getattr(self._monitor, "others", [])]
        idle = [m for m in monitors if m is not None and hasattr(m, "busy")]
        for m in idle:
            m.busy = True
        try:
            costs = self._costs.measure(self._model)
        finally:
            for m in idle:
                m.busy = False
        return {k: v for k, v in costs.items() if k not in reported}

    def _trained_by(self, way: str, held: Any = ()) -> None:
        """For the integrations' callbacks: the trial trains under `way` ("lightning",
        "transformers"), so the checks give their fixes in that framework's terms; `held`:
        parameters optimizers other than the watched one step (not "unheld")."""
        monitor: Any = self._monitor
        if monitor is not None and hasattr(monitor, "way"):
            monitor.way = way
            monitor.also_held = {id(p) for p in held}
            for other in getattr(monitor, "others", []):
                other.way = way

    def step(self, loss: torch.Tensor) -> None:
        """Optional, once per training step: adds the loss checks (not finite, growing far
        above its start) to what ``watch`` does."""
        watchdog.beat()
        if self._monitor is not None:
            self._monitor.on_loss(loss.detach())

    def close(self) -> None:
        """Detach the monitor's hooks from the model (the trial's training is over)."""
        for hook in self._beats:
            hook.remove()
        self._beats = []
        if self._monitor is not None:
            self._monitor.close()


def builtin_fit(task: Any, data: Data) -> FitFn:
    """sweeper's own loop as a fit function: the task's model, data, hooks and the params'
    precision, clipping, accumulation and schedule."""

    def fit(params: dict[str, Any], trial: Trial) -> None:
        run = start_run(task, data, params, trial.device, seed=trial.number, epochs=trial.epochs)
        trial.watch(run.model, run.optimizer)
        state = trial.restore()
        if state is not None:
            load_run_state(run, state)
        for epoch in range(trial.start_epoch, trial.epochs):
            train_loss = train_epoch(run, on_loss=trial.step)
            if not math.isfinite(train_loss):
                raise TrialStopped(f"train loss became {train_loss} (not finite)")
            metrics = {"train_loss": train_loss, **evaluate(run)}
            if epoch == trial.epochs - 1:  # the train split as the val split is judged
                metrics.update(evaluate_train(run))
            trial.checkpoint(lambda: run_state(run))
            trial.report(metrics)

    return fit
