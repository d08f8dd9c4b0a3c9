"""The probes' short runs: a few optimizer steps with hook points, so the tiny-set fit, the lr
range test and the gradient-flow check train through one loop here, never their own (the
trials' and the short fit's loop is `_loop.py`). Modelled on Lightning's lr finder: the loop
steps, a schedule sets the lr, hooks watch and decide when to stop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch

from sweeper.training._data import Inputs, forward
from sweeper.training._losses import MODEL, model_loss, resolve_loss

# step, loss value, model output (None unless asked for) -> True to stop before the update
OnLoss = Callable[[int, float, Any], bool]
OnGrads = Callable[[int], bool]  # step -> True to stop before the update, gradients in place


def probe_steps(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[tuple[Inputs, torch.Tensor]],
    steps: int,
    loss: Any,
    kind: str | None = None,
    *,
    lr: Callable[[int], float] | None = None,
    on_loss: OnLoss | None = None,
    on_grads: OnGrads | None = None,
    outputs: bool = False,
) -> int:
    """Up to `steps` optimizer steps on `batches` with the task's `loss` (a name, a callable,
    or ``"model"``: the model's own) and returns how many updates were taken.

    lr: the lr of step i; each parameter group keeps its ratio to ``lr(0)`` (a backbone at
        0.1x stays at 0.1x). None: the optimizer's lrs as they are.
    on_loss: sees each step's loss (and, with `outputs`, the model's output) before
        backward; True stops there, without an update.
    on_grads: sees each step after backward, the gradients in place; True stops there,
        without an update.
    """
    ratios = [float(g["lr"]) / lr(0) for g in optimizer.param_groups] if lr is not None else []
    loss_fn = None if loss == MODEL else resolve_loss(loss, kind)
    for i in range(steps):
        if lr is not None:
            for group, ratio in zip(optimizer.param_groups, ratios, strict=True):
                group["lr"] = lr(i) * ratio
        xb, yb = next(batches)
        optimizer.zero_grad(set_to_none=True)
        out = forward(model, xb) if (outputs or loss_fn is not None) else None
        value = model_loss(model, xb, yb) if loss_fn is None else loss_fn(out, yb)
        if on_loss is not None and on_loss(i, float(value.item()), out):
            return i
        value.backward()
        if on_grads is not None and on_grads(i):
            return i
        optimizer.step()
    return steps
