"""The names sweeper accepts for what its own loop does, declared once and torch-free, so the
definition's validation (which must not import torch) and the training code that implements
them read the same lists. The probes' names and thresholds have their own catalog,
`sweeper.probes` (`GATE_PROBES`, `TRIAL_CHECKS`, `Thresholds`), torch-free as well."""

from __future__ import annotations

# weight-init schemes a search may name (sweeper.training.apply_init implements each)
INIT_SCHEMES = (
    "none",
    "default",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
    "normal",
    "zeros",
)
OPTIMIZERS = ("adam", "adamw", "sgd")  # sweeper's optimizer without a task hook
PRECISIONS = ("fp32", "bf16", "fp16")
SCHEDULES = ("constant", "cosine", "linear")  # sweeper's lr schedule without a task hook
LOOP_METRICS = ("val_accuracy", "val_loss", "train_loss")  # what sweeper's loop reports
