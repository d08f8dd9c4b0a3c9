"""Learning-rate range test: raise lr exponentially each step until the loss blows up."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch

from sweeper.probes._context import Context
from sweeper.probes._finding import Finding
from sweeper.probes._threads import free_threads
from sweeper.training import Inputs, build_model, make_optimizer, probe_steps


def _cycle(ctx: Context, batch_size: int) -> Iterator[tuple[Inputs, torch.Tensor]]:
    gen = torch.Generator().manual_seed(ctx.seed)
    while True:
        yield from ctx.data.train.epoch(batch_size, shuffle=True, generator=gen)


def lr_range_test(ctx: Context, lo: float = 1e-6, hi: float = 10.0) -> Finding:
    """Raise lr exponentially from `lo` to `hi` over `lr_range_steps` steps of the task's own
    optimizer (each parameter group keeps its ratio to the others) until the smoothed loss
    passes 4x its best: the divergence lr caps the search. A `fit` task's own optimizer is
    unknown to sweeper unless the task names it (an optimizer hook or the `optimizer`
    param): then the test runs with Adam and only informs, it caps nothing."""
    steps = ctx.settings.lr_range_steps
    torch.manual_seed(ctx.seed)
    params = {**ctx.params, "dropout": 0.0, "lr": lo}
    model = build_model(ctx.task, params, ctx.device)
    model.train()
    opt = make_optimizer(model, params, ctx.task)
    factor = (hi / lo) ** (1 / steps)
    lrs: list[float] = []
    losses: list[float] = []
    avg, best = 0.0, math.inf
    diverged_at: float | None = None

    def lr_at(i: int) -> float:
        return lo * factor**i

    def watch(i: int, value: float, _out: Any) -> bool:
        """The smoothed loss of step i; True once it diverges (not finite, or 4x its best)."""
        nonlocal avg, best, diverged_at
        if not math.isfinite(value):
            diverged_at = lr_at(i)
            return True
        avg = 0.9 * avg + 0.1 * value
        smooth = avg / (1 - 0.9 ** (i + 1))
        lrs.append(lr_at(i))
        losses.append(smooth)
        best = min(best, smooth)
        if i > 5 and smooth > 4 * best:
            diverged_at = lr_at(i)
            return True
        return False

    batches = _cycle(ctx, ctx.probe_batch(steps, cap=256))
    with free_threads(ctx.cpu_share):
        probe_steps(
            model, opt, batches, steps, ctx.task.loss, ctx.task.kind, lr=lr_at, on_loss=watch
        )
    known = ctx.task.fit is None or ctx.task.optimizer is not None or "optimizer" in ctx.params
    details: dict[str, Any] = {"lrs": lrs, "losses": losses, "optimizer": type(opt).__name__}
    if diverged_at is not None and known:
        details["cap"] = diverged_at * ctx.settings.lr_cap_factor
    expected = f"loss falls, then diverges somewhere in [{lo:g}, {hi:g}]"
    measured = {
        "divergence_lr": diverged_at,
        "best_lr": lrs[losses.index(best)] if losses else None,
    }
    if losses and best > 0.9 * losses[0]:
        details.pop("cap", None)
        return Finding(
            "lr_range_test",
            "pass",
            measured,
            expected,
            "inconclusive: the loss moved less than 10% before the lr grew too large, so the "
            "search's lr range is left as it is",
            details=details,
        )
    hint = (
        f"lr diverges from about {diverged_at:.3g}; the search's lr stays below "
        f"{diverged_at * ctx.settings.lr_cap_factor:.3g}"
        if diverged_at
        else "no divergence up to lr = 10"
    )
    if diverged_at and not known:
        hint = (
            f"with Adam, lr diverges from about {diverged_at:.3g}; the task's fit uses an "
            "optimizer sweeper cannot see, so the search's lr range is not capped (give the "
            "task an optimizer hook, or an `optimizer` param, to cap it)"
        )
    return Finding("lr_range_test", "pass", measured, expected, hint, details=details)
