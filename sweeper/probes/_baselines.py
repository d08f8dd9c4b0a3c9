"""Is the output connected to the input? Two baselines a working setup must beat clearly."""

from __future__ import annotations

import math

import torch

from sweeper.probes._context import Context
from sweeper.probes._finding import Finding
from sweeper.probes._overfit import fit_tiny, tiny_indices
from sweeper.training import Inputs, evaluate, start_run, train_epoch, tree_map


def uninformative(x: Inputs, pad_id: int = 0) -> Inputs:
    """The same input with its information removed: floats zeroed, integer ids set to the
    padding id, masks (a name with "mask") all ones so every position is still attended."""

    def blank(name: str, t: torch.Tensor) -> torch.Tensor:
        if t.is_floating_point():
            return torch.zeros_like(t)
        if "mask" in name:
            return torch.ones_like(t)
        return torch.full_like(t, pad_id)

    if isinstance(x, dict):
        return {k: blank(str(k), v) for k, v in x.items()}
    return tree_map(lambda t: blank("", t), x)


def zero_input_baseline(ctx: Context) -> Finding:
    """The tiny fit on an uninformative input (zeros; the padding id for integer inputs) must
    end clearly worse than on the real inputs."""
    x, y = ctx.data.train.take(tiny_indices(ctx, ctx.settings.overfit_samples))
    steps = min(ctx.settings.overfit_steps, 100)
    real = fit_tiny(ctx, x, y, steps=steps)
    zero = fit_tiny(ctx, uninformative(x), y, steps=steps)
    measured = {
        "real inputs loss": round(real["loss"], 4),
        "zero inputs loss": round(zero["loss"], 4),
    }
    s = ctx.settings
    expected = (
        f"zero-input loss clearly above real-input loss "
        f"(ratio ≥ {s.baseline_min_ratio:g} or gap ≥ {s.baseline_min_gap:g})"
    )
    if not (math.isfinite(real["loss"]) and math.isfinite(zero["loss"])):
        return Finding(
            "zero_input_baseline",
            "warn",
            measured,
            expected,
            "a fit was not finite; see overfit_tiny",
        )
    if (
        zero["loss"] >= s.baseline_min_ratio * real["loss"]
        or zero["loss"] - real["loss"] >= s.baseline_min_gap
    ):
        return Finding("zero_input_baseline", "pass", measured, expected)
    return Finding(
        "zero_input_baseline",
        "fail",
        measured,
        expected,
        "the model fits as well with zeroed inputs as with the real ones: its output "
        "does not depend on the input (inputs lost in the pipeline, or forward ignores x)",
    )


def short_fit_vs_baseline(ctx: Context) -> Finding:
    """A short fit on the full training set must beat the majority class (or the mean target)
    on validation; otherwise the labels do not go with the inputs."""
    params = {**ctx.params, "dropout": 0.0, "lr": min(float(ctx.params.get("lr", 1e-3)), 3e-3)}
    params["batch_size"] = min(int(params.get("batch_size", 64)), 128)
    per_epoch = math.ceil(len(ctx.data.train) / params["batch_size"])
    epochs = min(20, max(3, math.ceil(ctx.settings.short_fit_min_steps / per_epoch)))
    run = start_run(ctx.task, ctx.data, params, ctx.device, seed=ctx.seed, epochs=epochs)
    for _ in range(epochs):
        if not math.isfinite(train_epoch(run)):
            break
    metrics = evaluate(run)
    _, y_tr = ctx.data.train.head(1 << 30)
    _, y_va = ctx.data.val.head(1 << 30)
    if ctx.kind == "regression":
        baseline = float(((y_va.float() - y_tr.float().mean()) ** 2).mean())
        got = metrics["val_loss"]
        measured = {"val_loss": round(got, 4), "predict-the-mean loss": round(baseline, 4)}
        expected = f"val loss < 0.9 x {baseline:.4g} after {epochs} epochs"
        ok = ctx.loss_name != "mse" or got < 0.9 * baseline
    else:
        majority = int(torch.bincount(y_tr.long().flatten()).argmax())
        baseline = float((y_va.long() == majority).float().mean())
        got = metrics.get("val_accuracy", 0.0)
        measured = {"val_accuracy": round(got, 4), "majority-class accuracy": round(baseline, 4)}
        margin = max(ctx.settings.short_fit_margin, 0.2 * (1 - baseline))
        expected = f"val accuracy > {baseline + margin:.3f} after {epochs} epochs"
        ok = got > baseline + margin
    if ok:
        return Finding("short_fit_vs_baseline", "pass", measured, expected)
    return Finding(
        "short_fit_vs_baseline",
        "fail",
        measured,
        expected,
        "a short fit does not beat the trivial baseline on validation: labels are "
        "probably misaligned with the inputs (shuffled X and y separately, or a join "
        "on the wrong key)",
    )
