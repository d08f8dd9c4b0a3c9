"""Can the model memorise a handful of samples? If not, nothing else is worth tuning."""

from __future__ import annotations

import math
from typing import Any

import torch

from sweeper.probes._context import Context
from sweeper.probes._finding import Finding
from sweeper.training import Inputs, build_model, correct, forward, resolve_loss


def tiny_indices(ctx: Context, n: int) -> torch.Tensor:
    """n training rows drawn at random (fixed seed), spread over the classes when possible."""
    g = torch.Generator().manual_seed(ctx.seed)
    total = len(ctx.data.train)
    return torch.randperm(total, generator=g)[: min(n, total)]


def fit_tiny(
    ctx: Context,
    x: Inputs,
    y: torch.Tensor,
    params: dict[str, Any] | None = None,
    steps: int | None = None,
) -> dict[str, Any]:
    """Full-batch Adam on (x, y), dropout and weight decay off. Returns the loss curve and the
    final loss and accuracy."""
    s = ctx.settings
    p = dict(params or ctx.params)
    p.update(dropout=0.0, weight_decay=0.0)
    torch.manual_seed(ctx.seed)
    model = build_model(ctx.task, p, ctx.device)
    model.train()
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=s.overfit_lr)
    loss_fn = resolve_loss(ctx.task.loss)
    floor = ctx.loss_floor()
    curve: list[float] = []
    acc = float("nan")
    n_steps = steps or s.overfit_steps
    for step in range(n_steps):
        opt.zero_grad(set_to_none=True)
        out = forward(model, x)
        loss = loss_fn(out, y)
        value = float(loss.item())
        curve.append(value)
        if not math.isfinite(value):
            break
        if ctx.kind != "regression" and step % 10 == 9:
            acc = float(correct(out.detach(), y, ctx.kind).item()) / len(y)
            if acc >= s.overfit_min_accuracy and value <= floor + 0.02:
                break
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        out = forward(model, x)
        final = float(loss_fn(out, y).item())
        if ctx.kind != "regression":
            acc = float(correct(out, y, ctx.kind).item()) / len(y)
    return {"curve": curve, "loss": final, "accuracy": acc, "steps": len(curve)}


def overfit_tiny(ctx: Context) -> Finding:
    s = ctx.settings
    x, y = ctx.data.train.take(tiny_indices(ctx, s.overfit_samples))
    r = fit_tiny(ctx, x, y)
    floor = ctx.loss_floor()
    details = {"curve": r["curve"], "steps": r["steps"], "samples": len(y)}
    start = r["curve"][0] if r["curve"] else float("nan")
    if ctx.kind == "regression":
        target = s.overfit_regression_ratio * max(start, 1e-12)
        measured = r["loss"]
        expected = (
            f"loss ≤ {target:.4g} ({s.overfit_regression_ratio:.0%} of the initial {start:.4g}) "
            f"within {s.overfit_steps} steps"
        )
        if math.isfinite(measured) and measured <= target:
            return Finding("overfit_tiny", "pass", measured, expected, "", details=details)
        return Finding(
            "overfit_tiny",
            "fail",
            measured,
            expected,
            "cannot fit a few samples: an activation on the output layer may clip "
            "the range (e.g. ReLU on a regression output), or gradients do not reach "
            "the parameters",
            details=details,
        )
    c = ctx.num_classes
    margin = max(0.1, 0.1 * math.log(c))
    expected = (
        f"train accuracy ≥ {s.overfit_min_accuracy:.0%} and loss ≤ {floor + margin:.3f} "
        f"(floor {floor:.3f}) on {len(y)} samples within {s.overfit_steps} steps"
    )
    measured = {"accuracy": round(r["accuracy"], 4), "loss": round(r["loss"], 4)}
    details["measured_loss"] = r["loss"]
    if not math.isfinite(r["loss"]):
        return Finding(
            "overfit_tiny",
            "fail",
            measured,
            expected,
            "loss became non-finite on a tiny set with a safe optimizer: look for a "
            "log of zero or a division in the model or loss",
            details=details,
        )
    if r["accuracy"] >= s.overfit_min_accuracy and r["loss"] <= floor + margin:
        return Finding("overfit_tiny", "pass", measured, expected, "", details=details)
    if r["accuracy"] >= s.overfit_min_accuracy:
        double = math.log(math.e + c - 1) - 1
        hint = (
            f"accuracy is reached but the loss floors at {r['loss']:.3f}, above the right floor "
            f"{floor:.3f}"
        )
        if abs(r["loss"] - double) < 0.15 * double:
            hint += (
                f"; ≈ ln(e+C−1)−1 = {double:.3f} is the mark of a softmax (or sigmoid) "
                "applied before the loss: return raw logits and let the loss do it"
            )
        else:
            hint += ": the output is squashed before the loss (softmax/sigmoid in the model?)"
        return Finding("overfit_tiny", "fail", measured, expected, hint, details=details)
    return Finding(
        "overfit_tiny",
        "fail",
        measured,
        expected,
        "cannot memorise a few samples: the model or its wiring is broken (frozen or "
        "detached layers, an output activation, labels the model cannot represent); "
        "fix this before tuning anything",
        details=details,
    )
