"""The training loop shared by trials and probes, the trial handle, init schemes, losses.
Imports torch."""

from sweeper.training._data import Batches, Inputs, forward, is_plain_float, leaves, rows, tree_map
from sweeper.training._init_schemes import SCHEMES, apply_init, init_targets
from sweeper.training._loop import (
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    Data,
    Run,
    autocast,
    build_model,
    evaluate,
    make_optimizer,
    make_scheduler,
    start_run,
    train_epoch,
)
from sweeper.training._losses import correct, resolve_loss
from sweeper.training._trial import FitFn, Monitor, Trial, builtin_fit

__all__ = [
    "OPTIMIZERS",
    "PRECISIONS",
    "SCHEDULES",
    "SCHEMES",
    "Batches",
    "Data",
    "FitFn",
    "Inputs",
    "Monitor",
    "Run",
    "Trial",
    "apply_init",
    "autocast",
    "build_model",
    "builtin_fit",
    "correct",
    "evaluate",
    "forward",
    "init_targets",
    "is_plain_float",
    "leaves",
    "make_optimizer",
    "make_scheduler",
    "resolve_loss",
    "rows",
    "start_run",
    "train_epoch",
    "tree_map",
]
