"""The training loop shared by trials and probes, the trial handle, init schemes, losses.
Imports torch."""

from sweeper.training._build import (
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    autocast,
    build_model,
    make_optimizer,
    make_scheduler,
    read_output,
)
from sweeper.training._data import Batches, Inputs, forward, is_plain_float, leaves, rows, tree_map
from sweeper.training._init_schemes import SCHEMES, apply_init, init_targets
from sweeper.training._loop import Data, Run, evaluate, evaluate_train, start_run, train_epoch
from sweeper.training._losses import (
    IGNORE_INDEX,
    MODEL,
    NoLossError,
    batch_loss,
    class_dim,
    correct,
    decision_threshold,
    loss_name,
    model_loss,
    resolve_loss,
)
from sweeper.training._steps import probe_steps
from sweeper.training._trial import FitFn, Monitor, Trial, builtin_fit

__all__ = [
    "IGNORE_INDEX",
    "OPTIMIZERS",
    "PRECISIONS",
    "SCHEDULES",
    "SCHEMES",
    "Batches",
    "Data",
    "FitFn",
    "Inputs",
    "Monitor",
    "NoLossError",
    "Run",
    "Trial",
    "apply_init",
    "autocast",
    "build_model",
    "builtin_fit",
    "class_dim",
    "correct",
    "decision_threshold",
    "evaluate",
    "evaluate_train",
    "forward",
    "init_targets",
    "is_plain_float",
    "leaves",
    "loss_name",
    "batch_loss",
    "MODEL",
    "make_optimizer",
    "make_scheduler",
    "read_output",
    "resolve_loss",
    "probe_steps",
    "model_loss",
    "rows",
    "start_run",
    "train_epoch",
    "tree_map",
]
