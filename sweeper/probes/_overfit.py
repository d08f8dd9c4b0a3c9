"""Can the model memorise a handful of samples? If not, nothing else is worth tuning.

The fit stops when the samples are memorised, when the loss stops falling (a plateau: the
verdict), or at `overfit_steps`. A model still learning at the end of the budget is not
failed: memorising speed differs by orders of magnitude between an MLP and a word-level LM,
and only a loss that levels off above the floor shows a wiring bug.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from sweeper.probes._context import Context
from sweeper.probes._finding import Finding
from sweeper.probes._threads import free_threads
from sweeper.training import (
    IGNORE_INDEX,
    MODEL,
    Inputs,
    forward,
    model_loss,
    probe_steps,
    resolve_loss,
)

# every this many steps the fit looks at its progress; a plateau is less than
# _PLATEAU_SHARE of the way from the start to the floor gained over the last _WINDOW steps
_CHECK, _WINDOW, _PLATEAU_SHARE = 10, 50, 0.01


@dataclass
class TinyFit:
    """What a tiny fit did: the loss curve (train mode), the final loss and accuracy in eval
    mode, and how it stopped (goal reached, plateau, or the step budget)."""

    curve: list[float] = field(default_factory=list)
    loss: float = math.nan
    accuracy: float = math.nan
    reached: bool = False  # memorised (classification), or the loss fell to its goal
    plateau: bool = False  # the loss stopped falling before the goal

    @property
    def steps(self) -> int:
        """Optimizer steps taken so far."""
        return len(self.curve)

    @property
    def start(self) -> float:
        """A fresh model and optimizer on the tiny set."""
        return self.curve[0] if self.curve else math.nan


def tiny_indices(ctx: Context, n: int) -> torch.Tensor:
    """n training rows (fixed seed), taking the classes in turn when each row has one, so a
    rare class is in the set (a 10%-positive task gives 8 and 8, not 16 negatives)."""
    g = torch.Generator().manual_seed(ctx.seed)
    total = len(ctx.data.train)
    order = torch.randperm(total, generator=g)
    if ctx.kind not in ("multiclass", "binary") or ctx.per_element:
        return order[: min(n, total)]
    _, y = ctx.data.train.take(order[: min(total, 4096)])
    labels = y.long().flatten().cpu()
    pools = [order[: len(labels)][labels == c].tolist() for c in labels.unique().tolist()]
    picked: list[int] = []
    while len(picked) < min(n, len(labels)):
        for pool in pools:
            if pool and len(picked) < n:
                picked.append(pool.pop(0))
    return torch.tensor(picked)


def tiny_rows(ctx: Context) -> int:
    """Rows of the tiny set: `overfit_samples`, or for targets per token or per pixel as
    many rows as hold about 8x that many counted targets (ignored ones left out: a masked
    LM's rows hold few), and at least 4: a handful of sequences is already hundreds of
    targets to memorise, and each row costs a full forward. Four rows or more keep the
    blank-input floor (each position's label entropy, up to ln 4) above what a memorised
    fit may end at, so the zero-input baseline is not judged against a blank-input model
    that tells rows apart by position alone."""
    n = ctx.settings.overfit_samples
    if not ctx.per_element:
        return n
    _, y = ctx.data.train.head(min(n, 64))
    counted = int((y != IGNORE_INDEX).sum()) / max(len(y), 1)
    return max(min(4, n), min(n, math.ceil(8 * n / max(counted, 1.0))))


def goal(ctx: Context, fit: TinyFit, loss: float, accuracy: float) -> bool:
    """Memorised: accuracy and a loss near the floor (classification); the loss down to a
    share of where it started (regression), or to half of it (a custom loss)."""
    s = ctx.settings
    if ctx.kind in ("multiclass", "binary", "multilabel"):
        return accuracy >= s.overfit_min_accuracy and loss <= ctx.loss_floor() + loss_margin(ctx)
    ratio = s.overfit_regression_ratio if ctx.kind == "regression" else 0.5
    return fit.start > 0 and loss <= ratio * fit.start


def loss_margin(ctx: Context) -> float:
    """How far above its floor a tiny fit's loss may end and still pass."""
    return max(0.1, 0.1 * math.log(ctx.num_classes))


def _plateau(ctx: Context, curve: list[float]) -> bool:
    if len(curve) < 2 * _WINDOW:
        return False
    before, recent = min(curve[:-_WINDOW]), min(curve[-_WINDOW:])
    span = max(curve[0] - ctx.loss_floor(), 1e-8)
    return before - recent < _PLATEAU_SHARE * span


def recalibrate_batchnorm(model: torch.nn.Module, x: Inputs) -> None:
    """Running statistics of every BatchNorm layer from the fit's own rows, so an eval-mode
    verdict sees the network as it trained (20 momentum updates lag far behind weights that
    moved quickly)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the passes below
    model.train()
    with torch.no_grad():
        forward(model, x)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum


def fit_tiny(
    ctx: Context, x: Inputs, y: torch.Tensor, steps: int | None = None, stop: bool = True
) -> TinyFit:
    """Full-batch Adam on (x, y), dropout and weight decay off, at most `steps` steps; with
    `stop`, it ends early at the goal or a plateau. On the CPUs other processes left free
    (`free_threads`)."""
    with free_threads(ctx.cpu_share):
        return _fit_tiny(ctx, x, y, steps, stop)


def _fit_tiny(ctx: Context, x: Inputs, y: torch.Tensor, steps: int | None, stop: bool) -> TinyFit:
    s = ctx.settings
    model = ctx.fresh_model(weight_decay=0.0)
    model.train()
    trainable = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.Adam(trainable, lr=s.overfit_lr)
    loss_fn = resolve_loss(ctx.task.loss, ctx.task.kind)
    own = ctx.task.loss == MODEL  # the model's own loss: training_step, or labels=
    fit = TinyFit()

    def watch(step: int, value: float, out: Any) -> bool:
        """Keep the curve; True at a non-finite loss, and (with `stop`) at the goal or a
        plateau, checked every `_CHECK` steps."""
        fit.curve.append(value)
        if not math.isfinite(value):
            return True
        if stop and step % _CHECK == _CHECK - 1:
            if goal(ctx, fit, value, ctx.accuracy(out, y)):
                return True
            if _plateau(ctx, fit.curve):
                fit.plateau = True
                return True
        return False

    full_batch = itertools.repeat((x, y))
    n = steps or s.overfit_steps
    probe_steps(
        model, opt, full_batch, n, ctx.task.loss, ctx.task.kind, on_loss=watch, outputs=True
    )
    recalibrate_batchnorm(model, x)
    model.eval()
    with torch.no_grad():
        out = forward(model, x)
        fit.loss = float((model_loss(model, x, y) if own else loss_fn(out, y)).item())
        fit.accuracy = ctx.accuracy(out, y)
    fit.reached = math.isfinite(fit.loss) and goal(ctx, fit, fit.loss, fit.accuracy)
    return fit


def real_tiny_fit(ctx: Context) -> tuple[TinyFit, Inputs, torch.Tensor]:
    """The tiny fit on the real rows, made once per gate (overfit_tiny and the zero-input
    baseline read it)."""
    if "tiny_fit" not in ctx.cache:
        x, y = ctx.data.train.take(tiny_indices(ctx, tiny_rows(ctx)))
        ctx.cache["tiny_fit"] = (fit_tiny(ctx, x, y), x, y)
    return ctx.cache["tiny_fit"]


def overfit_tiny(ctx: Context) -> Finding:
    """The model memorises a tiny, class-stratified training set: a model that cannot is wired
    wrong."""
    s = ctx.settings
    r, _, y = real_tiny_fit(ctx)
    details = {"curve": r.curve, "steps": r.steps, "samples": len(y)}
    floor = ctx.loss_floor()
    budget = f"within {s.overfit_steps} steps"
    if ctx.kind in ("multiclass", "binary", "multilabel"):
        expected = (
            f"train accuracy ≥ {s.overfit_min_accuracy:.0%} and loss ≤ "
            f"{floor + loss_margin(ctx):.3f} (floor {floor:.3f}) on {len(y)} samples {budget}, "
            "or a loss still falling"
        )
        measured: object = {
            "accuracy": round(r.accuracy, 4),
            "loss": round(r.loss, 4),
            "steps": r.steps,
        }
    else:
        share = s.overfit_regression_ratio if ctx.kind == "regression" else 0.5
        expected = f"loss ≤ {share:.0%} of its start ({r.start:.4g}) {budget}, or still falling"
        measured = {"loss": round(r.loss, 4), "start": round(r.start, 4), "steps": r.steps}
    details["measured_loss"] = r.loss
    if not math.isfinite(r.loss):
        return Finding(
            "overfit_tiny",
            "fail",
            measured,
            expected,
            "loss became non-finite on a tiny set with a safe optimizer: look for a "
            "log of zero or a division in the model or loss",
            details=details,
        )
    if r.reached:
        return Finding("overfit_tiny", "pass", measured, expected, details=details)
    if not r.plateau:
        return Finding(
            "overfit_tiny",
            "pass",
            measured,
            expected,
            f"still learning after {r.steps} steps (loss {r.start:.3g} → {r.loss:.3g}): this "
            "model memorises more slowly than the probe's budget, which is not a fault",
            details=details,
        )
    if at_frequency_plateau(ctx, r, y):
        return Finding(
            "overfit_tiny",
            "skip",
            measured,
            expected,
            f"inconclusive: after {r.steps} steps the loss sits at the tiny set's label "
            f"frequencies (entropy {label_entropy(y):.3g}), the plateau sequence models cross "
            "before they use their input; more steps than the probe's budget would tell",
            details=details,
        )
    return _plateau_failure(ctx, r, measured, expected, details)


def at_frequency_plateau(ctx: Context, fit: TinyFit, y: torch.Tensor) -> bool:
    """A per-token fit levelled off where predicting the label frequencies gets: the plateau
    a sequence model sits on before it uses its input."""
    h = label_entropy(y)
    return ctx.per_element and fit.plateau and abs(fit.loss - h) <= 0.1 * h + 0.05


def inconclusive(ctx: Context, fit: TinyFit, y: torch.Tensor) -> bool:
    """The tiny fit shows nothing yet: still learning at the end of its budget, or on the
    label-frequency plateau of a sequence model."""
    return not fit.reached and (not fit.plateau or at_frequency_plateau(ctx, fit, y))


def label_entropy(y: torch.Tensor) -> float:
    """Entropy of the class frequencies in y (ignored targets left out): the lowest loss a
    model that predicts the same distribution everywhere can reach."""
    labels = y.long().flatten()
    labels = labels[labels >= 0]
    if labels.numel() == 0:
        return 0.0
    p = torch.bincount(labels).double()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log()).sum())


def _plateau_failure(
    ctx: Context, r: TinyFit, measured: object, expected: str, details: dict[str, object]
) -> Finding:
    s, floor = ctx.settings, ctx.loss_floor()
    if ctx.kind == "custom" and r.start - r.loss >= 0.2 * abs(r.start):
        return Finding(
            "overfit_tiny",
            "pass",
            measured,
            expected,
            f"the loss fell from {r.start:.3g} to {r.loss:.3g} and levelled off; a custom "
            "loss has no known floor",
            details=details,
        )
    if ctx.kind in ("multiclass", "binary", "multilabel") and r.accuracy >= s.overfit_min_accuracy:
        c = ctx.num_classes
        double = math.log(math.e + c - 1) - 1
        hint = (
            f"accuracy is reached but the loss levels off at {r.loss:.3f}, above the right "
            f"floor {floor:.3f}"
        )
        if abs(r.loss - double) < 0.15 * double:
            hint += (
                f"; ≈ ln(e+C−1)−1 = {double:.3f} is the mark of a softmax (or sigmoid) "
                "applied before the loss: return raw logits and let the loss do it"
            )
        else:
            hint += ": the output is squashed before the loss (softmax/sigmoid in the model?)"
        return Finding("overfit_tiny", "fail", measured, expected, hint, details=details)
    what = (
        "an activation on the output layer may clip the range (e.g. ReLU on a regression "
        "output), or gradients do not reach the parameters"
        if ctx.kind == "regression"
        else "the model or its wiring is broken (frozen or detached layers, an output "
        "activation, labels the model cannot represent)"
    )
    return Finding(
        "overfit_tiny",
        "fail",
        measured,
        expected,
        f"cannot memorise {details['samples']} samples: the loss stopped "
        f"falling at {r.loss:.3g} after {r.steps} steps; {what}; fix this before tuning",
        details=details,
    )
