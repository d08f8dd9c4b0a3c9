"""The metric names a LightningModule's own steps log, read in the gate: one training step and
one validation step on a few rows, with `self.log` / `self.log_dict` recorded instead of sent
to a Trainer. The names are those Lightning puts in `trainer.callback_metrics`, which
`SweeperCallback` reports: each logged name, plus `name_step` and `name_epoch` when it is
logged both per step and per epoch. A study whose objective is a near miss of them (a typo, a
missing `_epoch`) is refused before its first trial, instead of being explained after its
trials ran; a name unlike all of them may be logged by a Callback, and is left to the trials.
"""

from __future__ import annotations

import difflib
from contextlib import contextmanager
from typing import Any

import torch

from sweeper.probes._context import Context
from sweeper.training import build_model

# the epoch-end hooks that may log further names, which one step cannot show
_EPOCH_HOOKS = (
    "on_train_epoch_end",
    "on_validation_epoch_end",
    "training_epoch_end",
    "validation_epoch_end",
)
_STEP_DEFAULTS = {"training_step": (True, False), "validation_step": (False, True)}


@contextmanager
def _recording(model: Any, hook: str, names: set[str]) -> Any:
    """`model.log` and `model.log_dict` record the names they would give (see module doc)."""
    step_default, epoch_default = _STEP_DEFAULTS[hook]

    def log(name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        on_step = kwargs.get("on_step")
        on_epoch = kwargs.get("on_epoch")
        on_step = step_default if on_step is None else bool(on_step)
        on_epoch = epoch_default if on_epoch is None else bool(on_epoch)
        names.add(str(name))
        if on_step and on_epoch:
            names.update({f"{name}_step", f"{name}_epoch"})

    def log_dict(values: Any, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(values).items():
            log(key, value, **kwargs)

    model.__dict__["log"], model.__dict__["log_dict"] = log, log_dict
    try:
        yield
    finally:
        model.__dict__.pop("log", None)
        model.__dict__.pop("log_dict", None)


def logged_names(ctx: Context) -> tuple[list[str], bool] | None:
    """For a model with its own training_step and validation_step (a LightningModule): the
    names they log, and whether those are all it logs (no epoch-end hook of its own); None for
    other models, or when a step cannot run outside a Trainer."""
    torch.manual_seed(ctx.seed)
    model: Any = build_model(ctx.task, ctx.params, ctx.device)
    if not all(callable(getattr(model, h, None)) for h in _STEP_DEFAULTS):
        return None
    names: set[str] = set()
    try:
        with _recording(model, "training_step", names):
            model.train()
            model.training_step(ctx.data.train.head(8), 0)
        with _recording(model, "validation_step", names), torch.no_grad():
            model.eval()
            model.validation_step(ctx.data.val.head(8), 0)
    except Exception:  # noqa: BLE001 - a step that needs its Trainer: nothing can be said
        return None
    return sorted(names), not any(_own_hook(model, n) for n in _EPOCH_HOOKS)


def _own_hook(model: Any, name: str) -> bool:
    """Whether `name` is defined by the user's class, not Lightning's."""
    for cls in type(model).__mro__:
        if name in vars(cls):
            return not cls.__module__.startswith(("lightning", "pytorch_lightning"))
    return False


def logged_problem(logged: tuple[list[str], bool] | None, metric: str) -> str | None:
    """Why `metric` will never reach a Lightning trial's reports, or None."""
    if logged is None:
        return None
    names, complete = logged
    # a name unlike any the steps log may come from a Lightning Callback's own self.log:
    # only a near miss (a typo, a wrong suffix) is sure to be wrong
    close = difflib.get_close_matches(metric, names, n=1, cutoff=0.6)
    if metric in names or not complete or not close:
        return None
    return (
        f"objective.metric {metric!r} is never logged: the module's training_step and "
        f"validation_step log {', '.join(names)} (Lightning's callback metrics, which "
        f"SweeperCallback reports); did you mean {close[0]!r}? Set objective.metric to one "
        f"of them, or self.log({metric!r}, value) in validation_step"
    )
