"""Loss at initialisation against what an untrained, uninformed model should give."""

from __future__ import annotations

import math

import torch

from sweeper.probes._context import Context
from sweeper.probes._finding import Finding
from sweeper.probes._outputs import init_outputs
from sweeper.training import resolve_loss

_CE_FAMILY = ("cross_entropy", "nll", "bce", "bce_prob")


def expected_init_loss(ctx: Context, y: torch.Tensor) -> tuple[float, str] | None:
    """(expected value, how it was derived) for the task's loss at init; None for a custom
    task's loss, which has no expected value."""
    name = ctx.loss_name
    kind = ctx.kind
    if kind == "custom":
        return None
    if name in ("cross_entropy", "nll") or (name == "custom" and kind == "multiclass"):
        c = ctx.num_classes
        return math.log(c), f"ln C = ln {c}"
    if name in ("bce", "bce_prob") or (name == "custom" and kind in ("binary", "multilabel")):
        return math.log(2), "ln 2"
    if name == "l1":
        return float(y.float().abs().mean()), "E[|y|]"
    return float((y.float() ** 2).mean()), "E[y²]"


@torch.no_grad()
def init_loss_value(ctx: Context) -> float:
    """The task's loss on the fresh model's output at init (see init_outputs)."""
    o = init_outputs(ctx)
    return float(resolve_loss(ctx.task.loss, ctx.task.kind)(o.out, o.y).item())


def prior_entropy(ctx: Context, y: torch.Tensor) -> float | None:
    """Entropy of the training labels' class prior (None for regression or custom losses)."""
    if ctx.kind == "regression" or ctx.loss_name not in _CE_FAMILY:
        return None
    if ctx.kind == "multilabel":
        p1 = y.float().mean(0).clamp(1e-6, 1 - 1e-6)
        return float(-(p1 * p1.log() + (1 - p1) * (1 - p1).log()).mean())
    y = y.long().flatten()
    counts = torch.bincount(y[y >= 0], minlength=ctx.num_classes)
    p = counts.double() / counts.sum()
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def output_scale(ctx: Context) -> float | None:
    """The loss at init over its expected value (None when there is none)."""
    _, y = ctx.data.train.head(512)
    got = expected_init_loss(ctx, y)
    if got is None or got[0] <= 0:
        return None
    value = init_loss_value(ctx)
    return value / got[0] if math.isfinite(value) else math.inf


def init_loss(ctx: Context) -> Finding:
    """The loss at init against what an untrained model should give (ln C for a softmax over C
    classes, the labels' prior, or the targets' variance)."""
    _, y = ctx.data.train.head(512)
    got = expected_init_loss(ctx, y)
    measured, out = init_loss_value(ctx), init_outputs(ctx).out
    if got is None:
        if not math.isfinite(measured):
            return Finding(
                "init_loss",
                "fail",
                measured,
                "a finite loss",
                "the loss is not finite before any training: look for NaN/inf in the "
                "inputs, a log of zero, or a division in the model or loss",
            )
        return Finding(
            "init_loss",
            "pass",
            measured,
            "finite (a custom task's loss has no expected value at init)",
        )
    expected, how = got
    s = ctx.settings
    lo, hi = expected * (1 - s.init_loss_tolerance), expected * (1 + s.init_loss_tolerance)
    exp_txt = f"≈ {expected:.3f} ({how}), within [{lo:.3f}, {hi:.3f}]"
    prior = prior_entropy(ctx, y)
    if prior is not None and prior < 0.9 * expected:
        # a last-layer bias set to the class prior starts at the prior's entropy: as right
        lo = prior * (1 - s.init_loss_tolerance)
        tol = s.init_loss_tolerance
        exp_txt = f"between H(prior) = {prior:.3f} and {how} = {expected:.3f}, ±{tol:.0%}"
    if not math.isfinite(measured):
        return Finding(
            "init_loss",
            "fail",
            measured,
            exp_txt,
            "loss is not finite before any training: look for NaN/inf in the inputs, "
            "a log of zero, or a division in the model or loss",
        )
    not_log_probs = (
        ctx.loss_name == "nll"
        and isinstance(out, torch.Tensor)
        and out.ndim == 2
        and float(torch.logsumexp(out.float(), dim=-1).abs().mean()) > 0.1
    )
    if ctx.loss_name in _CE_FAMILY and measured < 0 or not_log_probs:
        return Finding(
            "init_loss",
            "fail",
            measured,
            exp_txt,
            "a cross-entropy loss below 0 means it was fed the wrong thing: NLLLoss "
            "needs log-probabilities (add log_softmax, or use cross_entropy on raw "
            "logits)",
        )
    if measured > expected * s.init_loss_fail_ratio:
        return Finding(
            "init_loss",
            "fail",
            measured,
            exp_txt,
            f"loss at init is {measured / max(expected, 1e-12):.1f}x the expected "
            "value: inputs are not normalized (subtract the train-split mean, divide "
            "by its std) or the init makes outputs over-confident (lower the init "
            "scale, zero the last layer's bias)",
        )
    loaded = ctx.loaded_weights()
    if measured > hi and loaded:
        return Finding(
            "init_loss",
            "pass",
            measured,
            exp_txt,
            f"above ln C, as usual when a model starts from loaded weights ({len(loaded)} "
            f"weight matrices, e.g. {loaded[0]}): their features are not those of a fresh init",
        )
    if measured > hi:
        return Finding(
            "init_loss",
            "warn",
            measured,
            exp_txt,
            "loss at init is above the expected value: outputs start over-confident; "
            "check input scaling and the last layer's init",
        )
    if measured < lo:
        return Finding(
            "init_loss",
            "warn",
            measured,
            exp_txt,
            "loss at init is below what an uninformed model gives: check that the "
            "loss matches the output (e.g. no softmax before cross_entropy) and that "
            "targets do not leak into the inputs",
        )
    return Finding("init_loss", "pass", measured, exp_txt, "")
