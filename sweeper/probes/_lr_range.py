"""Learning-rate range test: raise lr exponentially each step until the loss blows up."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from sweeper.probes._context import Context
from sweeper.probes._finding import Finding
from sweeper.training import Inputs, build_model, forward, make_optimizer, resolve_loss


def _cycle(ctx: Context, batch_size: int) -> Iterator[tuple[Inputs, torch.Tensor]]:
    gen = torch.Generator().manual_seed(ctx.seed)
    while True:
        yield from ctx.data.train.epoch(batch_size, shuffle=True, generator=gen)


def lr_range_test(ctx: Context, lo: float = 1e-6, hi: float = 10.0, steps: int = 120) -> Finding:
    torch.manual_seed(ctx.seed)
    params = {**ctx.params, "dropout": 0.0, "lr": lo}
    model = build_model(ctx.task, params, ctx.device)
    model.train()
    opt = make_optimizer(model, params, ctx.task)
    loss_fn = resolve_loss(ctx.task.loss)
    factor = (hi / lo) ** (1 / steps)
    lrs: list[float] = []
    losses: list[float] = []
    avg, best, diverged_at = 0.0, math.inf, None
    batches = _cycle(ctx, min(int(params.get("batch_size", 32)), 256))
    for i in range(steps):
        lr = lo * factor**i
        for g in opt.param_groups:
            g["lr"] = lr
        xb, yb = next(batches)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(forward(model, xb), yb)
        value = float(loss.item())
        if not math.isfinite(value):
            diverged_at = lr
            break
        avg = 0.9 * avg + 0.1 * value
        smooth = avg / (1 - 0.9 ** (i + 1))
        lrs.append(lr)
        losses.append(smooth)
        best = min(best, smooth)
        if i > 5 and smooth > 4 * best:
            diverged_at = lr
            break
        loss.backward()
        opt.step()
    details = {"lrs": lrs, "losses": losses, "optimizer": str(params.get("optimizer", "adam"))}
    if diverged_at is not None:
        details["cap"] = diverged_at * ctx.settings.lr_cap_factor
    expected = f"loss falls, then diverges somewhere in [{lo:g}, {hi:g}]"
    measured = {
        "divergence_lr": diverged_at,
        "best_lr": lrs[losses.index(best)] if losses else None,
    }
    if losses and best > 0.9 * losses[0]:
        return Finding(
            "lr_range_test",
            "warn",
            measured,
            expected,
            "the loss never fell at any learning rate: see overfit_tiny and gradient_flow",
            details=details,
        )
    hint = (
        f"lr diverges from about {diverged_at:.3g}; the search's lr stays below "
        f"{diverged_at * ctx.settings.lr_cap_factor:.3g}"
        if diverged_at
        else "no divergence up to lr = 10"
    )
    return Finding("lr_range_test", "pass", measured, expected, hint, details=details)
