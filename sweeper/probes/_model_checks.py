"""Checks of the model's wiring: gradients, batch independence, eval determinism, gradcheck."""

from __future__ import annotations

import copy

import torch

from sweeper.probes._context import Context
from sweeper.probes._finding import Finding
from sweeper.training import build_model, forward, is_plain_float, resolve_loss, rows, tree_map


def _fresh(ctx: Context) -> torch.nn.Module:
    torch.manual_seed(ctx.seed)
    return build_model(ctx.task, {**ctx.params, "dropout": 0.0}, ctx.device)


def gradient_flow(ctx: Context) -> Finding:
    """After one backward pass every trainable parameter has a finite, non-zero gradient."""
    model = _fresh(ctx)
    model.train()
    x, y = ctx.data.train.head(64)
    resolve_loss(ctx.task.loss)(forward(model, x), y).backward()
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


@torch.no_grad()
def batch_independence(ctx: Context) -> Finding:
    """In eval mode, the output for sample 0 must not change when the other samples do.

    Works for any input (float, token ids, tuples, dicts): rows 1.. are replaced by other
    rows of the training set and the output for row 0 is compared."""
    model = _fresh(ctx)
    model.eval()
    x, _ = ctx.data.train.head(8)
    n = rows(x)
    expected = "out[0] unchanged when the other rows of the batch change (eval mode)"
    if n < 3:
        return Finding("batch_independence", "skip", f"{n} training rows", expected)
    half = n // 2
    a = tree_map(lambda t: t[:half], x)
    b = tree_map(lambda t: torch.cat([t[:1], t[half : 2 * half - 1]]), x)
    out_a, out_b = _first_row(forward(model, a)), _first_row(forward(model, b))
    leak = float((out_a - out_b).abs().max())
    scale = float(out_a.abs().max())
    measured = f"max |Δout[0]| = {leak:.3g}"
    if leak > 1e-4 * max(scale, 1.0):
        return Finding(
            "batch_independence",
            "fail",
            measured,
            expected,
            "the model mixes samples across the batch in eval mode (a mean/sum over "
            "dim 0, a reshape that crosses samples, or a view(-1, …) on the wrong axis)",
        )
    return Finding("batch_independence", "pass", measured, expected)


def _first_rows(out: object) -> torch.Tensor:
    """Every output tensor flattened into one (the model may return a tuple or dict)."""
    if isinstance(out, torch.Tensor):
        return out.float()
    parts = list(out.values()) if isinstance(out, dict) else list(out)  # type: ignore[call-overload]
    return torch.cat([p.float().flatten() for p in parts if isinstance(p, torch.Tensor)])


def _first_row(out: object) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out[0].float()
    parts = list(out.values()) if isinstance(out, dict) else list(out)  # type: ignore[call-overload]
    return torch.cat([p[0].float().flatten() for p in parts if isinstance(p, torch.Tensor)])


@torch.no_grad()
def eval_determinism(ctx: Context) -> Finding:
    """Two eval-mode passes on the same input give the same output."""
    model = _fresh(ctx)
    model.eval()
    x, _ = ctx.data.train.head(64)
    diff = float((_first_rows(forward(model, x)) - _first_rows(forward(model, x))).abs().max())
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
    if not is_plain_float(x):
        return Finding(
            "gradcheck",
            "skip",
            "not applicable: inputs are integer or structured (no input gradient)",
            "analytic = numeric gradients",
        )
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
