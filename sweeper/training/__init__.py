"""The training loop shared by trials and probes, init schemes, losses. Imports torch."""

from sweeper.training._data import Batches
from sweeper.training._init_schemes import SCHEMES, apply_init
from sweeper.training._loop import (
    OPTIMIZERS,
    Data,
    Run,
    StepMonitor,
    build_model,
    evaluate,
    fit,
    make_optimizer,
    start_run,
    train_epoch,
)
from sweeper.training._losses import correct, resolve_loss

__all__ = [
    "OPTIMIZERS",
    "SCHEMES",
    "Batches",
    "Data",
    "Run",
    "StepMonitor",
    "apply_init",
    "build_model",
    "correct",
    "evaluate",
    "fit",
    "make_optimizer",
    "resolve_loss",
    "start_run",
    "train_epoch",
]
