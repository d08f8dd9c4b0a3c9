"""The checks at a trial's start, under the trial's own params: activation statistics and the
loss at init. A failure stops the trial before it trains; `untrained_loss` is what the trial
monitor judges reported losses against."""

from __future__ import annotations

import math
from typing import Any

from sweeper.probes._activations import activation_stats, init_label
from sweeper.probes._baselines import _label_baselines
from sweeper.probes._context import Context
from sweeper.probes._finding import Finding, Verdict
from sweeper.probes._init_loss import expected_init_loss, init_loss_value
from sweeper.training import loss_name


def trial_start_checks(ctx: Context) -> list[Finding]:
    """Loss at init and activation statistics under the trial's own init scheme; a failure
    stops the trial before it trains."""
    acts = activation_stats(ctx)
    if any(f.verdict == "fail" for f in acts):
        return acts
    return acts + _trial_init_loss(ctx)


def _trial_init_loss(ctx: Context) -> list[Finding]:
    _, y = ctx.data.train.head(512)
    got = expected_init_loss(ctx, y)
    if got is None:
        return []
    expected, how = got
    measured = init_loss_value(ctx)
    ratio = measured / max(expected, 1e-12)
    exp_txt = f"≈ {expected:.3f} ({how})"
    label = init_label(str(ctx.params.get("init", "none")))
    if not math.isfinite(measured) or measured < 0 and ctx.loss_name in ("cross_entropy", "nll"):
        return [
            Finding("trial_init_loss", "fail", measured, exp_txt, f"{label} gives a broken loss")
        ]
    if ratio > ctx.settings.init_loss_fail_ratio:
        return [
            Finding(
                "trial_init_loss",
                "fail",
                measured,
                exp_txt,
                f"{label} starts {ratio:.1f}x above the expected loss: outputs are "
                "over-confident under this scheme",
            )
        ]
    verdict: Verdict = "warn" if abs(ratio - 1) > ctx.settings.init_loss_tolerance else "pass"
    return [Finding("trial_init_loss", verdict, measured, exp_txt, "")]


def untrained_loss(task: Any) -> float | None:
    """The loss an untrained classifier gives, from the task alone (no data): ln C for a
    softmax loss, ln 2 for a sigmoid one; None where it depends on the data."""
    name, kind = loss_name(task.loss, task.kind), str(task.kind)
    if kind == "multiclass" and task.num_classes and name in ("cross_entropy", "nll"):
        return math.log(int(task.num_classes))
    if kind in ("binary", "multilabel") and name in ("bce", "bce_prob"):
        return math.log(2)
    return None


def chance_levels(ctx: Context) -> dict[str, float]:
    """What a model that learned nothing scores on validation, for the trial monitor's
    `at_chance`: the majority class's accuracy, and the labels' prior loss where the loss is a
    cross-entropy; empty for tasks without class labels or data, and for per-token or
    per-pixel targets: sequence models sit at the unigram level for epochs before attention
    takes off (a BART copy task: flat for 3 epochs, then learning), so a plateau there is
    not a stuck trial."""
    if ctx.data is None or ctx.kind not in ("multiclass", "binary", "multilabel"):
        return {}
    if ctx.kind == "multiclass" and ctx.per_element:
        return {}
    prior, majority, _ = _label_baselines(ctx)
    return {"accuracy": majority} | ({"loss": prior} if prior is not None else {})
