"""Checks of the model's wiring: gradients, batch independence, eval determinism, gradcheck."""

from __future__ import annotations

import copy

import torch

from sweeper.probes._context import Context
from sweeper.probes._finding import Finding
from sweeper.training import build_model, resolve_loss


def _fresh(ctx: Context) -> torch.nn.Module:
    torch.manual_seed(ctx.seed)
    return build_model(ctx.task, {**ctx.params, "dropout": 0.0}, ctx.device)


def gradient_flow(ctx: Context) -> Finding:
    """After one backward pass every trainable parameter has a finite, non-zero gradient."""
    model = _fresh(ctx)
    model.train()
    x, y = ctx.data.train.head(64)
    resolve_loss(ctx.task.loss)(model(x), y).backward()
    none, zero, nonfinite, frozen = [], [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            frozen.append(name)
        elif p.grad is None:
            none.append(name)
        elif not bool(torch.isfinite(p.grad).all()):
            nonfinite.append(name)
        elif float(p.grad.abs().max()) == 0.0:
            zero.append(name)
    total = sum(1 for _ in model.parameters())
    measured = {"no grad": none, "zero grad": zero, "non-finite": nonfinite, "frozen": frozen}
    expected = f"all {total} parameters trainable with finite non-zero gradients"
    if nonfinite:
        return Finding(
            "gradient_flow",
            "fail",
            measured,
            expected,
            f"non-finite gradients in {nonfinite[:4]} after one step: a log of zero, "
            "a division, or an overflow in the model or loss",
        )
    if none:
        return Finding(
            "gradient_flow",
            "fail",
            measured,
            expected,
            f"no gradient reaches {none[:4]}: a .detach()/.data/no_grad in forward, "
            "or a layer that is never used",
        )
    if frozen:
        return Finding(
            "gradient_flow",
            "fail",
            measured,
            expected,
            f"parameters {frozen[:4]} are frozen (requires_grad=False) and will never "
            "train; unfreeze them, or disable this probe if that is intended",
        )
    if zero:
        return Finding(
            "gradient_flow",
            "fail",
            measured,
            expected,
            f"gradients are exactly zero in {zero[:4]}: a zero/constant init makes "
            "units symmetric or dead; use a random init scheme",
        )
    return Finding("gradient_flow", "pass", {"parameters": total}, expected)


def batch_independence(ctx: Context) -> Finding:
    """In eval mode, the output for sample i must not depend on sample j."""
    model = _fresh(ctx)
    model.eval()
    x, _ = ctx.data.train.head(4)
    x = x.clone().requires_grad_(True)
    out = model(x)
    out[0].sum().backward()
    assert x.grad is not None
    leak = float(x.grad[1:].abs().max()) if len(x) > 1 else 0.0
    own = float(x.grad[0].abs().max())
    expected = "∂out[0]/∂x[j] = 0 for j ≠ 0 (eval mode)"
    if leak > 1e-6 * max(own, 1.0):
        return Finding(
            "batch_independence",
            "fail",
            f"max |∂out[0]/∂x[j]| = {leak:.3g}",
            expected,
            "the model mixes samples across the batch in eval mode (a mean/sum over "
            "dim 0, a reshape that crosses samples, or a view(-1, …) on the wrong axis)",
        )
    return Finding("batch_independence", "pass", f"max |∂out[0]/∂x[j]| = {leak:.3g}", expected)


@torch.no_grad()
def eval_determinism(ctx: Context) -> Finding:
    """Two eval-mode passes on the same input give the same output."""
    model = _fresh(ctx)
    model.eval()
    x, _ = ctx.data.train.head(64)
    diff = float((model(x) - model(x)).abs().max())
    expected = "identical outputs from two eval-mode passes"
    if diff > 1e-5:
        return Finding(
            "eval_determinism",
            "fail",
            f"max difference {diff:.3g}",
            expected,
            "eval-mode outputs change between passes: dropout (or other randomness) "
            "stays on at eval; use nn.Dropout / F.dropout(x, p, self.training)",
        )
    return Finding("eval_determinism", "pass", f"max difference {diff:.3g}", expected)


def gradcheck(ctx: Context) -> Finding:
    """torch.autograd.gradcheck in float64 on two rows, for models with custom backward code."""
    model = copy.deepcopy(_fresh(ctx)).double().eval()
    n_params = sum(p.numel() for p in model.parameters())
    x, _ = ctx.data.train.head(2)
    if x[0].numel() > 1024 or n_params > 2_000_000:
        return Finding("gradcheck", "pass", "skipped (input or model too large)", "—")
    x = x.double().clone().requires_grad_(True)
    try:
        ok = torch.autograd.gradcheck(
            model, (x,), eps=1e-6, atol=1e-4, rtol=1e-3, raise_exception=False, fast_mode=True
        )
    except RuntimeError as e:
        return Finding(
            "gradcheck",
            "warn",
            f"could not run: {e}",
            "analytic = numeric gradients",
            "the model does not run in float64; gradcheck skipped",
        )
    if ok:
        return Finding("gradcheck", "pass", "analytic = numeric", "analytic = numeric gradients")
    return Finding(
        "gradcheck",
        "fail",
        "analytic ≠ numeric",
        "analytic = numeric gradients",
        "autograd's gradients disagree with finite differences: a custom "
        "autograd.Function's backward is wrong",
    )
