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
# what it reports besides at a trial's last epoch: the train split in eval mode (the
# bias/variance verdict's train side; `train_loss` is the epoch's running mean in train mode)
LOOP_TRAIN_METRICS = ("train_accuracy", "train_eval_loss")
# what a trial costs, measured by sweeper itself on the model the trial trains (sweeper's loop:
# its model; an own fit: the first model given to `trial.watch`), at the trial's last epoch,
# only when an objective or a constraint names it (sweeper.training._costs): lower is better
COST_METRICS = {
    "params": "trainable parameters",
    "flops": "floating-point operations of one eval-mode forward, per sample",
    "latency_ms": "median eval-mode forward time of one batch of `costs.batch` rows, in ms",
    "peak_memory_mb": "peak memory of the training, in MB",
    "train_seconds": "seconds spent training, waits on the driver left out",
}


def train_counterpart(metric: str) -> list[str]:
    """The names a trial's last epoch may report the objective's train-split value under, first
    found wins: `val_X`/`eval_X` -> `train_X` (sweeper's loop: `val_loss` -> `train_eval_loss`,
    measured in eval mode, before the running `train_loss`), any other name `train_<name>`."""
    if metric == "val_loss":
        return ["train_eval_loss", "train_loss"]
    for prefix in ("val_", "eval_", "valid_", "validation_", "test_"):
        if metric.startswith(prefix):
            return ["train_" + metric[len(prefix) :]]
    return ["train_" + metric]
