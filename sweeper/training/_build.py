"""What a run is made of: the task's model (its init scheme applied, its output read the way
the loss takes it), the optimizer and the lr schedule, and the autocast of the params'
precision. The loop (`_loop.py`) and the probes' short runs (`_steps.py`) build from here.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from sweeper.catalog import OPTIMIZERS, PRECISIONS, SCHEDULES
from sweeper.training._init_schemes import apply_init


def autocast(
    params: dict[str, Any], device: torch.device
) -> contextlib.AbstractContextManager[Any]:
    """torch.autocast for the params' precision (a no-op for fp32)."""
    precision = str(params.get("precision", "fp32"))
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def build_model(
    task: Any, params: dict[str, Any], device: torch.device, readout: bool = True
) -> nn.Module:
    """The task's model for these params, with the params' init scheme ("none": as built)
    applied to the modules the task allows. With `readout`, a forward hook hands sweeper's
    callers the part of the output the loss takes; without it (a model handed back to the
    user, `load_best_model`) the model is exactly what the task built."""
    with torch.enable_grad():  # a build that pre-trains or loads may need autograd
        model = task.build_model(dict(params))
    if not isinstance(model, nn.Module):
        raise TypeError(f"build_model returned {type(model).__name__}, not a torch.nn.Module")
    apply_init(model, str(params.get("init", "none")), getattr(task, "init_modules", None))
    if readout:
        model.register_forward_hook(_readout(getattr(task, "output", None)), with_kwargs=True)
    return model.to(device)


def read_output(out: Any, how: str | Callable[..., Any] | None = None) -> Any:
    """The part of a model's output the loss takes (see ``Task.output``)."""
    if callable(how):
        return how(out)
    if isinstance(how, str):
        return out[how] if isinstance(out, dict) else getattr(out, how)
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict) and "logits" in out:
        return out["logits"]
    logits = getattr(out, "logits", None)
    return logits if isinstance(logits, torch.Tensor) else out


def _readout(how: str | Callable[..., Any] | None) -> Callable[..., Any]:
    """A forward hook on the model itself, so every caller (trials, probes, evaluation) gets
    the output the loss takes; the model's weights and state dict stay the user's."""

    def hook(_m: nn.Module, _args: Any, kwargs: dict[str, Any], out: Any) -> Any:
        if "labels" in kwargs:  # called for its own loss (loss="model"): the output as it is
            return None
        return read_output(out, how)

    return hook


def make_optimizer(
    model: nn.Module, params: dict[str, Any], task: Any = None
) -> torch.optim.Optimizer:
    """The task's optimizer hook if it has one, else Adam / AdamW / SGD from the params."""
    hook = getattr(task, "optimizer", None)
    if hook is not None:
        opt = hook(model, dict(params))
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(
                f"the task's optimizer hook returned {type(opt).__name__}, not a "
                "torch.optim.Optimizer"
            )
        return opt
    name = str(params.get("optimizer", "adam")).lower()
    lr = float(params["lr"])
    wd = float(params.get("weight_decay", 0.0))
    trainable = [p for p in model.parameters() if p.requires_grad]
    if name == "adam":
        return torch.optim.Adam(trainable, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(trainable, lr=lr, weight_decay=wd)
    if name == "sgd":
        momentum = float(params.get("momentum", 0.9))
        return torch.optim.SGD(trainable, lr=lr, momentum=momentum, weight_decay=wd)
    raise ValueError(f"unknown optimizer {name!r}; choose from {list(OPTIMIZERS)}")


def make_scheduler(
    task: Any,
    optimizer: torch.optim.Optimizer,
    params: dict[str, Any],
    steps_per_epoch: int,
    epochs: int,
) -> Any:
    """The task's scheduler hook, else sweeper's warmup + constant/cosine/linear schedule when
    the params set `warmup_steps` or `schedule`, else None."""
    hook = getattr(task, "scheduler", None)
    if hook is not None:
        return hook(optimizer, dict(params), steps_per_epoch, epochs)
    warmup = int(params.get("warmup_steps", 0))
    shape = str(params.get("schedule", "constant"))
    if shape not in SCHEDULES:
        raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {shape!r}")
    if warmup <= 0 and shape == "constant":
        return None
    total = max(1, steps_per_epoch * epochs)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        done = min(1.0, (step - warmup) / max(1, total - warmup))
        if shape == "cosine":
            return 0.5 * (1 + math.cos(math.pi * done))
        return 1.0 - done if shape == "linear" else 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
