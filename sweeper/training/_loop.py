"""The one training loop every trial and every probe uses."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from sweeper.training._data import Batches
from sweeper.training._init_schemes import apply_init
from sweeper.training._losses import LossFn, correct, resolve_loss

OPTIMIZERS = ("adam", "adamw", "sgd")


class StepMonitor(Protocol):
    """Watches training as it happens; returns a reason to stop, or None."""

    def after_step(self, step: int, loss: torch.Tensor, run: Run) -> str | None: ...


@dataclass
class Data:
    """A task's train and validation data on one device, built once and reused by every run."""

    train: Batches
    val: Batches
    kind: str

    @classmethod
    def of(cls, task: Any, device: torch.device) -> Data:
        return cls(
            Batches(task.train, task.kind, device), Batches(task.val, task.kind, device), task.kind
        )


@dataclass
class Run:
    """One model being trained with one set of params."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: LossFn
    data: Data
    params: dict[str, Any]
    device: torch.device
    generator: torch.Generator
    steps: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def batch_size(self) -> int:
        return int(self.params["batch_size"])


def build_model(task: Any, params: dict[str, Any], device: torch.device) -> nn.Module:
    model = task.build_model(dict(params))
    if not isinstance(model, nn.Module):
        raise TypeError(f"build_model returned {type(model).__name__}, not a torch.nn.Module")
    apply_init(model, str(params.get("init", "default")))
    return model.to(device)


def make_optimizer(model: nn.Module, params: dict[str, Any]) -> torch.optim.Optimizer:
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


def start_run(
    task: Any, data: Data, params: dict[str, Any], device: torch.device, seed: int | None = None
) -> Run:
    """Build a fresh model (with the params' init scheme) and its optimizer."""
    if seed is not None:
        torch.manual_seed(seed)
    model = build_model(task, params, device)
    gen = torch.Generator()
    gen.manual_seed(seed if seed is not None else int(torch.randint(0, 2**31 - 1, ()).item()))
    return Run(
        model=model,
        optimizer=make_optimizer(model, params),
        loss_fn=resolve_loss(task.loss),
        data=data,
        params=dict(params),
        device=device,
        generator=gen,
    )


def train_epoch(run: Run, monitor: StepMonitor | None = None) -> tuple[float, str | None]:
    """One pass over the training data. Returns (mean train loss, stop reason or None)."""
    run.model.train()
    total = torch.zeros((), device=run.device)
    n = 0
    for xb, yb in run.data.train.epoch(run.batch_size, shuffle=True, generator=run.generator):
        run.optimizer.zero_grad(set_to_none=True)
        loss = run.loss_fn(run.model(xb), yb)
        loss.backward()
        if monitor is not None:
            reason = monitor.after_step(run.steps, loss.detach(), run)
            if reason is not None:
                return float("nan"), reason
        run.optimizer.step()
        run.steps += 1
        total += loss.detach() * len(xb)
        n += len(xb)
    mean = float(total.item()) / max(n, 1)
    return mean, None if math.isfinite(mean) else f"train loss became {mean} (not finite)"


@torch.no_grad()
def evaluate(run: Run, batches: Batches | None = None, chunk: int = 4096) -> dict[str, float]:
    """Loss (and accuracy for classification) over a whole split, in eval mode."""
    run.model.eval()
    data = batches if batches is not None else run.data.val
    loss_sum = torch.zeros((), device=run.device, dtype=torch.float64)
    right = torch.zeros((), device=run.device, dtype=torch.long)
    n = 0
    for xb, yb in data.epoch(chunk, shuffle=False):
        out = run.model(xb)
        loss_sum += run.loss_fn(out, yb).double() * len(xb)
        if run.data.kind != "regression":
            right += correct(out, yb, run.data.kind)
        n += len(xb)
    metrics = {"val_loss": float(loss_sum.item()) / max(n, 1)}
    if run.data.kind != "regression":
        metrics["val_accuracy"] = float(right.item()) / max(n, 1)
    return metrics


def fit(
    run: Run,
    epochs: int,
    on_epoch: Callable[[int, dict[str, float]], bool] | None = None,
    monitor: StepMonitor | None = None,
) -> str | None:
    """Train for `epochs`; `on_epoch(epoch, metrics)` returning False stops early.
    Returns the monitor's stop reason, if any."""
    for epoch in range(epochs):
        train_loss, reason = train_epoch(run, monitor)
        if reason is not None:
            return reason
        metrics = {"train_loss": train_loss, **evaluate(run)}
        run.history.append(metrics)
        if on_epoch is not None and on_epoch(epoch, metrics) is False:
            break
    return None
