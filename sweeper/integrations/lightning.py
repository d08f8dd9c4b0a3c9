"""`SweeperCallback(trial)`: a Lightning ``Trainer`` run as a sweeper trial.

Inside a task's ``fit(params, trial)``::

    callback = SweeperCallback(trial)
    trainer = lightning.pytorch.Trainer(max_epochs=trial.epochs, callbacks=[callback])
    trainer.fit(module, datamodule, ckpt_path=callback.ckpt_path)

The callback watches the module and its (first) optimizer with the per-trial probes, reports
the logged metrics once per epoch (after its validation), ends ``trainer.fit`` cleanly when the
pruner or a probe stops the trial (then re-raises ``TrialStopped`` so the trial is recorded as
stopped, with its reason), and hands Lightning's own checkpoint to ``trial.checkpoint`` so a
re-queued trial resumes mid-trial from ``callback.ckpt_path``. Works with ``lightning`` and
with ``pytorch_lightning`` 2.x.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sweeper.errors import TrialStopped
from sweeper.integrations._metrics import numeric_metrics
from sweeper.training import Trial


def _callback_bases() -> tuple[type, ...]:
    """Lightning's Callback class from each installed flavour, so one callback fits the
    Trainer of either (`lightning` also installs `pytorch_lightning`)."""
    bases = []
    for name in ("lightning.pytorch", "pytorch_lightning"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if int(str(getattr(module, "__version__", "2")).split(".")[0]) >= 2:
            bases.append(module.Callback)
    if not bases:
        raise ImportError(
            "sweeper.integrations.lightning needs Lightning 2.x: pip install 'sweeper[lightning]' "
            "(or lightning / pytorch_lightning >= 2.0 in your environment)"
        )
    return tuple(bases)


class SweeperCallback(*_callback_bases()):  # type: ignore[misc]
    """A Lightning callback that makes a ``Trainer`` one sweeper trial.

    trial: the ``sweeper.Trial`` the task's ``fit`` was given.
    metrics: the logged names to report (default: every scalar in
        ``trainer.callback_metrics``), so ``objective.metric`` can be any logged name.

    ``ckpt_path``: the checkpoint a re-queued trial resumes from (None on a fresh start): pass
    it to ``trainer.fit(..., ckpt_path=callback.ckpt_path)``. ``stopped``: the
    ``TrialStopped`` that ended training, re-raised when the Trainer has wound down.
    With several optimizers, the first one is watched by the probes.
    """

    def __init__(self, trial: Trial, metrics: str | Iterable[str] | None = None) -> None:
        """See the class docstring. On a worker without a GPU share the CUDA devices are
        hidden, so ``accelerator="auto"`` trains where Ray placed the trial."""
        super().__init__()
        self.trial = trial
        self.metrics = (
            [metrics] if isinstance(metrics, str) else None if metrics is None else list(metrics)
        )
        self.stopped: TrialStopped | None = None
        self._dir = tempfile.mkdtemp(prefix=f"sweeper-trial{trial.number}-")
        if trial.in_study and trial.device.type == "cpu":
            os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # Ray gave this trial no GPU
        self.ckpt_path = self._resume_file()

    def _resume_file(self) -> str | None:
        state = self.trial.restore()
        if not isinstance(state, dict) or "lightning_checkpoint" not in state:
            return None
        path = Path(self._dir) / "resume.ckpt"
        path.write_bytes(state["lightning_checkpoint"])
        return str(path)

    def _checkpoint_bytes(self, trainer: Any) -> bytes:
        """Lightning's own checkpoint of the whole fit (module, optimizers, schedulers, loops,
        callbacks), as the bytes ``trainer.save_checkpoint`` writes (the file is not kept)."""
        path = Path(self._dir) / "last.ckpt"
        trainer.save_checkpoint(path)
        try:
            return path.read_bytes()
        finally:
            path.unlink(missing_ok=True)

    def _clean_up(self) -> None:
        """Remove the callback's folder (the resume file): the trial is over."""
        shutil.rmtree(self._dir, ignore_errors=True)

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Check the Trainer against the trial before anything trains."""
        if stage != "fit":
            return
        max_epochs = trainer.max_epochs
        if max_epochs not in (None, -1) and max_epochs != self.trial.epochs:
            raise ValueError(
                f"Trainer(max_epochs={max_epochs}) but this trial trains {self.trial.epochs} "
                "epochs (the study's budget.epochs): build the Trainer with "
                "max_epochs=trial.epochs so every epoch is reported"
            )
        if self.ckpt_path is not None and trainer.ckpt_path != self.ckpt_path:
            self.trial.start_epoch = 0  # resumable, but fit was not given the checkpoint

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Watch the module and its first optimizer, after Lightning's sanity check, on the
        device the Trainer moved it to."""
        if self.trial.device.type == "cpu" and pl_module.device.type == "cuda":
            raise RuntimeError(
                "the Trainer put the model on a GPU this trial was not given (the study's "
                "resources.gpus is 0): build the Trainer with accelerator='auto' after "
                "creating SweeperCallback, or with accelerator='cpu'"
            )
        others = [
            p for opt in trainer.optimizers[1:] for g in opt.param_groups for p in g["params"]
        ]
        self.trial._trained_by("lightning", others)
        if trainer.optimizers:
            self.trial.watch(pl_module, trainer.optimizers[0])

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Checkpoint when one is due, then report the epoch's logged metrics: its validation
        (which Lightning runs before the training epoch ends) and its epoch-level training
        metrics, which exist only from here on. A stop from the pruner or a probe ends the fit
        at this point."""
        if self.stopped is not None:
            return
        metrics = numeric_metrics(dict(trainer.callback_metrics), self.metrics)
        if not metrics:
            return
        self.trial.checkpoint(lambda: {"lightning_checkpoint": self._checkpoint_bytes(trainer)})
        try:
            self.trial.report(metrics)
        except TrialStopped as stop:
            self.stopped = stop
            trainer.should_stop = True

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        """The Trainer has wound down: a stop is raised now, so the trial is recorded as
        stopped with its reason."""
        self.trial.close()
        self._clean_up()
        if self.stopped is not None:
            raise self.stopped

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Training raised (a probe's stop from a hook, or an error): clean up; Lightning
        passes the exception on."""
        self.trial.close()
        self._clean_up()
