"""A LightningModule trained by Lightning's ``Trainer`` as each trial: digits, an MLP.

The task gives the module itself as ``build_model`` (a LightningModule is a ``torch.nn.Module``
whose ``forward`` returns the logits), so the gate probes it before the search, and a ``fit``
that runs the Trainer with ``sweeper.integrations.lightning.SweeperCallback``: the callback
watches the module and optimizer, reports the logged ``val_accuracy``/``val_loss``/
``train_loss`` each epoch, ends the fit when the pruner or a probe stops the trial, and
checkpoints through Lightning's own checkpoint so a re-queued trial resumes.
Needs ``pip install 'sweeper[lightning]'``.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import torch
import torch.nn.functional as F

try:
    import lightning.pytorch as pl
except ImportError:  # pytorch_lightning 2.x alone
    import pytorch_lightning as pl  # type: ignore[no-redef]

from sweeper.examples.digits import MLP, digits_split
from sweeper.task import Task
from sweeper.training import Trial


class LitDigits(pl.LightningModule):
    """The digits MLP as a LightningModule: cross-entropy, Adam or SGD, logged metrics."""

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__()
        self.lr = float(params["lr"])
        self.optimizer_name = str(params.get("optimizer", "adam"))
        self.net = MLP(int(params.get("hidden", 64)), float(params.get("dropout", 0.0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        out = self(x)
        self.log("val_loss", F.cross_entropy(out, y))
        self.log("val_accuracy", (out.argmax(1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.optimizer_name == "sgd":
            return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def trainer(trial: Trial, callbacks: list[Any]) -> Any:
    """A quiet CPU/GPU Trainer for one trial: no progress bar, logger or checkpoint files of
    its own (sweeper keeps the checkpoints), and none of Lightning's per-fit info lines."""
    for name in ("lightning.pytorch", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated")  # Lightning vs torch
    return pl.Trainer(
        max_epochs=trial.epochs,
        callbacks=callbacks,
        accelerator="auto",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def lightning_digits_task() -> Task:
    """Digits classified by `LitDigits`, each trial a ``Trainer.fit``."""
    from torch.utils.data import DataLoader, TensorDataset

    from sweeper.integrations.lightning import SweeperCallback

    x_tr, x_va, y_tr, y_va = (torch.as_tensor(a) for a in digits_split())

    def fit(params: dict[str, Any], trial: Trial) -> None:
        torch.manual_seed(trial.number)
        module = LitDigits(params)
        bs = int(params["batch_size"])
        train = DataLoader(TensorDataset(x_tr, y_tr), batch_size=bs, shuffle=True)
        val = DataLoader(TensorDataset(x_va, y_va), batch_size=512)
        callback = SweeperCallback(trial)
        trainer(trial, [callback]).fit(module, train, val, ckpt_path=callback.ckpt_path)

    return Task(
        build_model=LitDigits,
        train=(x_tr, y_tr),
        val=(x_va, y_va),
        loss="model",  # the gate trains on LitDigits.training_step's own loss
        kind="multiclass",
        num_classes=10,
        fit=fit,
    )
