"""The one training loop every trial and every probe uses.

A task may bring its own optimizer, LR schedule and metrics (hooks on ``sweeper.Task``); the
params may set ``precision`` (fp32 | bf16 | fp16), ``grad_clip`` (max gradient norm),
``grad_accumulation`` (micro-batches per optimizer step), and, without a scheduler hook,
``warmup_steps`` and ``schedule`` (constant | cosine | linear) for sweeper's own schedule.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sweeper.catalog import train_counterpart
from sweeper.training._build import autocast, build_model, make_optimizer, make_scheduler
from sweeper.training._data import Batches, concat, forward
from sweeper.training._losses import (
    MODEL,
    LossFn,
    correct,
    decision_threshold,
    model_loss,
    resolve_loss,
)

# Called after each backward with the micro-batch's loss; it may raise sweeper.TrialStopped.
OnLoss = Callable[[torch.Tensor], None]


@dataclass
class Data:
    """A task's train and validation data on one device, built once and reused by every run."""

    train: Batches
    val: Batches
    kind: str

    @classmethod
    def of(cls, task: Any, device: torch.device) -> Data:
        """A task's train and validation splits on `device`."""

        def batches(split: Any) -> Batches:
            return Batches(split, task.kind, device, task.collate_fn, task.loader)

        return cls(batches(task.train), batches(task.val), task.kind)


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
    scheduler: Any = None
    scaler: Any = None
    metrics_fn: Callable[..., Any] | None = None
    loss: Any = None  # the task's loss as given (a name or a callable)
    steps: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def batch_size(self) -> int:
        """The micro-batch size from the params."""
        return int(self.params["batch_size"])

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The autocast context of the params' precision (a no-op for fp32 and on CPU)."""
        return autocast(self.params, self.device)


def steps_per_epoch(data: Data, params: dict[str, Any]) -> int:
    """Optimizer steps in one epoch for these params (micro-batches over gradient accumulation)."""
    micro = math.ceil(len(data.train) / int(params["batch_size"]))
    return math.ceil(micro / max(1, int(params.get("grad_accumulation", 1))))


def start_run(
    task: Any,
    data: Data,
    params: dict[str, Any],
    device: torch.device,
    seed: int | None = None,
    epochs: int = 1,
) -> Run:
    """Build a fresh model (with the params' init scheme), its optimizer and schedule."""
    if seed is not None:
        torch.manual_seed(seed)
    model = build_model(task, params, device)
    gen = torch.Generator()
    gen.manual_seed(seed if seed is not None else int(torch.randint(0, 2**31 - 1, ()).item()))
    optimizer = make_optimizer(model, params, task)
    scaler = None
    if str(params.get("precision", "fp32")) == "fp16" and device.type == "cuda":
        scaler = torch.amp.GradScaler("cuda")
    return Run(
        model=model,
        optimizer=optimizer,
        loss_fn=resolve_loss(task.loss, task.kind),
        loss=task.loss,
        data=data,
        params=dict(params),
        device=device,
        generator=gen,
        scheduler=make_scheduler(task, optimizer, params, steps_per_epoch(data, params), epochs),
        scaler=scaler,
        metrics_fn=getattr(task, "metrics", None),
    )


def run_state(run: Run) -> dict[str, Any]:
    """Everything a run needs to continue exactly where it is: model, optimizer, schedule,
    loss scaler, the shuffling generator and the step count."""
    return {
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict() if run.scheduler is not None else None,
        "scaler": run.scaler.state_dict() if run.scaler is not None else None,
        "generator": run.generator.get_state(),
        "steps": run.steps,
    }


def load_run_state(run: Run, state: dict[str, Any]) -> None:
    """Restore a run from `run_state`'s dict (a checkpoint), to continue exactly where it was."""
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    if run.scheduler is not None and state.get("scheduler") is not None:
        run.scheduler.load_state_dict(state["scheduler"])
    if run.scaler is not None and state.get("scaler") is not None:
        run.scaler.load_state_dict(state["scaler"])
    run.generator.set_state(state["generator"])
    run.steps = int(state["steps"])


def _loss(run: Run, out: Any, y: torch.Tensor) -> torch.Tensor:
    if isinstance(out, torch.Tensor) and out.dtype in (torch.float16, torch.bfloat16):
        out = out.float()  # the loss in fp32 under autocast
    return run.loss_fn(out, y)


def _optimizer_step(run: Run) -> None:
    clip = run.params.get("grad_clip")
    if run.scaler is not None:
        run.scaler.unscale_(run.optimizer)
    if clip:
        params = [p for g in run.optimizer.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, float(clip))
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
    if run.scheduler is not None:
        run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.steps += 1


def train_epoch(run: Run, on_loss: OnLoss | None = None, max_steps: int | None = None) -> float:
    """One pass over the training data (or its first `max_steps` optimizer steps); returns the
    mean train loss (not finite: nan/inf). `on_loss` sees each micro-batch's loss after
    backward and may raise TrialStopped."""
    run.model.train()
    total = torch.zeros((), device=run.device)
    n = 0
    accumulate = max(1, int(run.params.get("grad_accumulation", 1)))
    micro = 0
    run.optimizer.zero_grad(set_to_none=True)
    for xb, yb in run.data.train.epoch(run.batch_size, shuffle=True, generator=run.generator):
        with run.autocast():
            if run.loss == MODEL:  # the model's own: a LightningModule's training_step, labels=
                loss = model_loss(run.model, xb, yb)
            else:
                loss = _loss(run, forward(run.model, xb), yb)
        scaled = loss / accumulate if accumulate > 1 else loss
        if run.scaler is not None:
            scaled = run.scaler.scale(scaled)
        scaled.backward()
        if on_loss is not None:
            on_loss(loss.detach())
        micro += 1
        total += loss.detach() * len(yb)
        n += len(yb)
        if micro % accumulate == 0:
            _optimizer_step(run)
            if max_steps is not None and micro // accumulate >= max_steps:
                return float(total.item()) / max(n, 1)
    if micro % accumulate:
        _optimizer_step(run)  # the epoch's last, partial accumulation
    return float(total.item()) / max(n, 1)


def _eval_batches(
    run: Run, batches: Batches, chunk: int, order: torch.Generator | None = None
) -> Iterator[tuple[Any, torch.Tensor, torch.Tensor]]:
    """(output, target, loss) per chunk, in the split's order or shuffled by `order`; the loss
    is the model's own for ``loss="model"``."""
    for xb, yb in batches.epoch(chunk, shuffle=order is not None, generator=order):
        with run.autocast():
            out = forward(run.model, xb)
            own = model_loss(run.model, xb, yb) if run.loss == MODEL else None
        if isinstance(out, torch.Tensor) and out.dtype in (torch.float16, torch.bfloat16):
            out = out.float()
        yield out, yb, own if own is not None else run.loss_fn(out, yb)


@torch.no_grad()
def evaluate(
    run: Run,
    batches: Batches | None = None,
    chunk: int = 4096,
    limit: int | None = None,
    sample: torch.Generator | None = None,
) -> dict[str, float]:
    """Loss (and accuracy for classification) over a whole split (or its first `limit` rows;
    with `sample`, `limit` rows drawn at random), in eval mode, plus the task's own metrics
    when it has a metrics hook (over the whole split, or over the sample). Rows go through the
    model in chunks whose outputs stay within about 16M numbers (a language model's logits are
    rows x tokens x vocabulary)."""
    run.model.eval()
    data = batches if batches is not None else run.data.val
    chunk = _eval_chunk(run, data, chunk if limit is None else min(chunk, limit))
    loss_sum = torch.zeros((), device=run.device, dtype=torch.float64)
    right = torch.zeros((), device=run.device, dtype=torch.long)
    counted = torch.zeros((), device=run.device, dtype=torch.long)
    n = 0
    outs: list[Any] = []
    ys: list[torch.Tensor] = []
    accuracy = run.data.kind in ("multiclass", "binary", "multilabel")
    threshold = decision_threshold(run.loss)
    own_metrics = run.metrics_fn is not None and (limit is None or sample is not None)
    for out, yb, loss in _eval_batches(run, data, chunk, sample):
        loss_sum += loss.double() * len(yb)
        if accuracy and isinstance(out, torch.Tensor):
            r, c = correct(out, yb, threshold)
            right += r
            counted += c
        else:
            accuracy = False
        if own_metrics:
            outs.append(out)
            ys.append(yb)
        n += len(yb)
        if limit is not None and n >= limit:
            break
    metrics = {"val_loss": float(loss_sum.item()) / max(n, 1)}
    if accuracy:
        metrics["val_accuracy"] = float(right.item()) / max(int(counted.item()), 1)
    if run.metrics_fn is not None and outs:
        metrics.update(_user_metrics(run.metrics_fn, concat(outs), torch.cat(ys)))
    return metrics


TRAIN_EVAL_ROWS = 20_000  # a larger train split is judged on a random sample of this many rows


def evaluate_train(run: Run) -> dict[str, float]:
    """The train split judged as the validation split is (eval mode, no dropout): the
    bias/variance verdict's train side, reported at a trial's last epoch. `val_accuracy` ->
    `train_accuracy`, `val_loss` -> `train_eval_loss`, a metrics hook's `X` -> `train_X`."""
    rows = len(run.data.train)
    sample = None
    if rows > TRAIN_EVAL_ROWS:
        sample = torch.Generator().manual_seed(0)
    got = evaluate(run, run.data.train, limit=TRAIN_EVAL_ROWS if sample else None, sample=sample)
    out = {}
    for key, value in got.items():
        if key == "val_loss":
            out["train_eval_loss"] = value
        else:
            out[train_counterpart(key)[0]] = value
    return out


_EVAL_NUMBERS = 1 << 24


@torch.no_grad()
def _eval_chunk(run: Run, data: Batches, chunk: int) -> int:
    x, _ = data.head(1)
    with run.autocast():
        out = forward(run.model, x)
    per_row = sum(t.numel() for t in _tensors(out)) or 1
    return max(1, min(chunk, _EVAL_NUMBERS // per_row))


def _tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    values = (
        out.values() if isinstance(out, dict) else out if isinstance(out, (list, tuple)) else []
    )
    return [t for v in values for t in _tensors(v)]


def _user_metrics(fn: Callable[..., Any], outputs: Any, targets: torch.Tensor) -> dict[str, float]:
    got = fn(outputs, targets)
    if not isinstance(got, dict):
        raise TypeError(
            f"the task's metrics hook returned {type(got).__name__}; it must return a dict "
            "of metric name -> number"
        )
    out = {}
    for key, value in got.items():
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"the task's metrics hook gave {key!r} = {value!r}, which is not a number"
            ) from None
    return out


__all__ = [
    "Data",
    "Run",
    "evaluate",
    "evaluate_train",
    "load_run_state",
    "run_state",
    "start_run",
    "steps_per_epoch",
    "train_epoch",
]
