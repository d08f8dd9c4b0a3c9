"""Checks of the model's wiring: gradients, batch independence, eval determinism, gradcheck."""

from __future__ import annotations

import copy
import itertools
import math
from typing import Any

import torch

from sweeper.probes._context import Context
from sweeper.probes._finding import Finding, fmt
from sweeper.training import (
    batch_loss,
    build_model,
    forward,
    is_plain_float,
    probe_steps,
    rows,
    tree_map,
)


def _fresh(ctx: Context) -> torch.nn.Module:
    torch.manual_seed(ctx.seed)
    return build_model(ctx.task, {**ctx.params, "dropout": 0.0}, ctx.device)


def gradient_flow(ctx: Context, steps: int = 3) -> Finding:
    """Every trainable parameter gets a finite gradient that is not zero, within the first
    `steps` optimizer steps: a branch or head that starts at zero (ReZero, Fixup, zero-init
    residuals, a zero head) passes gradient to the layers before it after one step.

    A frozen parameter (requires_grad=False) is intended when it comes out of every build the
    same (loaded or set: a pretrained backbone); frozen at a random init, it never learns."""
    model = ctx.fresh_model()
    model.train()
    x, y = ctx.data.train.head(64)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    reached: set[str] = set()
    none, nonfinite = [], []

    def look(step: int) -> bool:
        """After backward: which parameters the gradients reached; True once it is known."""
        nonlocal none
        for name, p in trainable:
            if p.grad is None:
                continue
            if not bool(torch.isfinite(p.grad).all()):
                nonfinite.append(name)
            elif float(p.grad.abs().max()) > 0.0:
                reached.add(name)
        if step == 0:
            none = [n for n, p in trainable if p.grad is None]
        return bool(nonfinite or none or len(reached) == len(trainable) or not trainable)

    if trainable:
        opt = torch.optim.Adam([p for _, p in trainable], lr=1e-3)
        same = itertools.repeat((x, y))
        probe_steps(model, opt, same, steps, ctx.task.loss, ctx.task.kind, on_grads=look)
    zero = [n for n, _ in trainable if n not in reached and n not in none and n not in nonfinite]
    fixed = ctx.fixed_parameters()
    random_frozen = [n for n in frozen if n not in fixed]
    total = sum(1 for _ in model.parameters())
    measured = {"no grad": none, "zero grad": zero, "non-finite": nonfinite, "frozen": frozen}
    expected = (
        f"all {total} trainable parameters get finite non-zero gradients within {steps} "
        "steps; frozen ones as loaded"
    )
    if nonfinite:
        return Finding(
            "gradient_flow",
            "fail",
            measured,
            expected,
            f"non-finite gradients in {fmt(nonfinite[:4])} after one step: a log of zero, "
            "a division, or an overflow in the model or loss",
        )
    if none:
        return Finding(
            "gradient_flow",
            "fail",
            measured,
            expected,
            f"no gradient reaches {fmt(none[:4])}: a .detach()/.data/no_grad in forward, "
            "or a layer that is never used",
        )
    if random_frozen:
        return Finding(
            "gradient_flow",
            "fail",
            measured,
            expected,
            f"parameters {fmt(random_frozen[:4])} are frozen (requires_grad=False) at a random "
            "init, so they stay random: unfreeze them, or load their trained weights before "
            "freezing",
        )
    if zero:
        return Finding(
            "gradient_flow",
            "fail",
            measured,
            expected,
            f"gradients stay exactly zero in {fmt(zero[:4])} for {steps} steps: a zero/constant "
            "init makes units symmetric or dead; use a random init scheme",
        )
    hint = f"{len(frozen)} frozen parameters kept as loaded ({fmt(frozen[:3])})" if frozen else ""
    return Finding("gradient_flow", "pass", {"parameters": total}, expected, hint)


# layers whose gradients are sparse or small by design
_NOT_DEPTH = (
    torch.nn.Embedding,
    torch.nn.EmbeddingBag,
    torch.nn.LayerNorm,
    torch.nn.GroupNorm,
    torch.nn.modules.batchnorm._NormBase,
)


def _is_norm(m: torch.nn.Module) -> bool:
    return isinstance(m, _NOT_DEPTH[2:]) or type(m).__name__.endswith(
        ("Norm", "Norm1d", "Norm2d", "Norm3d")
    )


def gradient_depth(ctx: Context) -> Finding:
    """Vanishing or exploding gradients across depth at init: the gradient's RMS at the output
    of the first weight layer against the last (in the order forward calls them), named by
    layer. Embeddings and normalization layers are left out."""
    model = _fresh(ctx)
    norms = [n for n, m in model.named_modules() if _is_norm(m)]
    if norms:
        return Finding(
            "gradient_depth",
            "skip",
            f"{len(norms)} normalization layers (e.g. {norms[0]})",
            "—",
            "normalization layers rescale activations and gradients at every depth; a "
            "transformer's branches also start small by design",
        )
    model.train()
    outputs: dict[str, torch.Tensor] = {}

    def keep(name: str) -> Any:
        def hook(_m: torch.nn.Module, _args: Any, out: Any) -> None:
            t = out[0] if isinstance(out, (tuple, list)) else out
            if name not in outputs and isinstance(t, torch.Tensor) and t.requires_grad:
                t.retain_grad()
                outputs[name] = t

        return hook

    hooks = [
        m.register_forward_hook(keep(n or type(m).__name__))
        for n, m in model.named_modules()
        if not isinstance(m, _NOT_DEPTH) and any(p.ndim >= 2 for p in m.parameters(recurse=False))
    ]
    try:
        x, y = ctx.data.train.head(64)
        batch_loss(ctx.task.loss, model, x, y).backward()
    finally:
        for h in hooks:
            h.remove()
    rms = {
        n: float(t.grad.float().pow(2).mean().sqrt())
        for n, t in outputs.items()
        if t.grad is not None
    }
    limit = ctx.settings.gradient_ratio_max
    expected = (
        f"gradient RMS at the first layers' outputs within {1 / limit:g}–{limit:g}x the last's"
    )
    if len(rms) < 2:
        return Finding("gradient_depth", "skip", f"{len(rms)} weight layer(s)", expected)
    names = list(rms)
    last = names[-1]
    # the first quarter of the layers, not one: attention's query and key projections get
    # almost no gradient at init by design (near-uniform attention), their neighbours do
    early = names[: max(1, (len(names) - 1) // 4)]
    if rms[last] == 0 or not all(map(math.isfinite, rms.values())):
        return Finding(
            "gradient_depth", "skip", "zero or non-finite gradients", "see gradient_flow"
        )
    strongest = max(early, key=lambda n: rms[n])
    if rms[strongest] == 0:
        return Finding(
            "gradient_depth",
            "skip",
            "no gradient at the first layers at init",
            "see gradient_flow (a layer that starts at zero downstream passes none yet)",
        )
    # vanishing: even the strongest early layer gets almost nothing; exploding: one gets far
    # too much (the first, usually)
    low = high = rms[strongest] / rms[last]
    first, ratio = strongest, low
    measured = {first: rms[first], last: rms[last], "ratio": ratio}
    details = {"gradient_rms": rms}
    where = f"{first} gets {ratio:.2g}x the gradient of {last} across {len(names)} weight layers"
    if low < 1 / limit:
        return Finding(
            "gradient_depth",
            "fail",
            measured,
            expected,
            f"gradients vanish with depth: {where}; saturating activations (sigmoid/tanh) or "
            "too small an init shrink the signal at every layer: use ReLU/GELU with He init, "
            "normalization layers, or residual connections",
            details=details,
        )
    if high > limit:
        return Finding(
            "gradient_depth",
            "fail",
            measured,
            expected,
            f"gradients explode with depth: {where}; every layer amplifies the signal "
            "(weights too large for their fan-in): use He/Xavier init, normalization, or "
            "residual connections",
            details=details,
        )
    return Finding("gradient_depth", "pass", measured, expected, details=details)


@torch.no_grad()
def batch_independence(ctx: Context) -> Finding:
    """In eval mode, the output for sample 0 must not change when the other samples do.

    Works for any input (float, token ids, tuples, dicts): rows 1.. are replaced by other
    rows of the training set and the output for row 0 is compared."""
    model = _fresh(ctx)
    model.eval()
    x, _ = ctx.data.train.head(8)
    n = rows(x)
    expected = "out[0] and out[-1] unchanged when the other rows of the batch change (eval mode)"
    if n < 3:
        return Finding("batch_independence", "skip", f"{n} training rows", expected)
    half = n // 2
    a = tree_map(lambda t: t[:half], x)
    if float((_first_rows(forward(model, a)) - _first_rows(forward(model, a))).abs().max()) > 0:
        return Finding("batch_independence", "skip", "outputs vary between passes", expected)
    # row 0 with other rows after it, and the last row with other rows before it
    b = tree_map(lambda t: torch.cat([t[:1], t[half : 2 * half - 1]]), x)
    c = tree_map(lambda t: torch.cat([t[half : 2 * half - 1], t[half - 1 : half]]), x)
    out_a, out_b = _row(forward(model, a), 0), _row(forward(model, b), 0)
    last_a, last_c = _row(forward(model, a), -1), _row(forward(model, c), -1)
    leak = max(float((out_a - out_b).abs().max()), float((last_a - last_c).abs().max()))
    scale = max(float(out_a.abs().max()), float(last_a.abs().max()))
    measured = f"max |Δout[0]| = {leak:.3g}"
    if leak > ctx.settings.batch_independence_tol * max(scale, 1.0):
        return Finding(
            "batch_independence",
            "fail",
            measured,
            expected,
            "the model mixes samples across the batch in eval mode (a mean/sum over "
            "dim 0, a reshape that crosses samples, a view(-1, …) on the wrong axis, or an "
            "RNN/attention layer without batch_first=True reading (batch, time, …) input)",
        )
    return Finding("batch_independence", "pass", measured, expected)


def _first_rows(out: object) -> torch.Tensor:
    """Every output tensor flattened into one (the model may return a tuple or dict)."""
    if isinstance(out, torch.Tensor):
        return out.float()
    parts = list(out.values()) if isinstance(out, dict) else list(out)  # type: ignore[call-overload]
    return torch.cat([p.float().flatten() for p in parts if isinstance(p, torch.Tensor)])


def _row(out: object, i: int) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out[i].float()
    parts = list(out.values()) if isinstance(out, dict) else list(out)  # type: ignore[call-overload]
    return torch.cat([p[i].float().flatten() for p in parts if isinstance(p, torch.Tensor)])


@torch.no_grad()
def eval_determinism(ctx: Context) -> Finding:
    """Two eval-mode passes on the same input give the same output."""
    model = _fresh(ctx)
    model.eval()
    x, _ = ctx.data.train.head(64)
    diff = float((_first_rows(forward(model, x)) - _first_rows(forward(model, x))).abs().max())
    expected = "identical outputs from two eval-mode passes"
    if diff > ctx.settings.eval_determinism_tol:
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
    if is_plain_float(x) and not isinstance(forward(model, x.double()), torch.Tensor):
        return Finding(
            "gradcheck", "skip", "the model returns several outputs", "analytic = numeric gradients"
        )
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
