"""Is the output connected to the input? Two baselines a working setup must beat clearly."""

from __future__ import annotations

import math

import torch

from sweeper.probes._context import Context
from sweeper.probes._finding import Finding
from sweeper.probes._overfit import fit_tiny, inconclusive, real_tiny_fit
from sweeper.probes._threads import free_threads
from sweeper.training import (
    IGNORE_INDEX,
    MODEL,
    Batches,
    Inputs,
    Run,
    evaluate,
    forward,
    start_run,
    train_epoch,
    tree_map,
)


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
    """The tiny fit on an uninformative input (zeros; the padding id for integer inputs), as
    many steps as the real fit took, must end clearly worse than the real one. When the real
    fit is still at the label frequencies (an LM early on), nothing can be told apart."""
    real, x, y = real_tiny_fit(ctx)
    s = ctx.settings
    expected = (
        f"zero-input loss clearly above real-input loss "
        f"(ratio ≥ {s.baseline_min_ratio:g} or gap ≥ {s.baseline_min_gap:g})"
    )
    if not math.isfinite(real.loss):
        return Finding(
            "zero_input_baseline",
            "skip",
            "the real fit was not finite",
            expected,
            "see overfit_tiny",
        )

    def apart(blank: float) -> bool:
        """A blank-input loss clearly above the real fit's."""
        return blank >= s.baseline_min_ratio * real.loss or blank - real.loss >= s.baseline_min_gap

    floor = blank_input_floor(ctx, y)
    if floor is not None and apart(floor):
        # decided without a second fit: blank inputs cannot get below the floor
        return Finding(
            "zero_input_baseline",
            "pass",
            {"real inputs loss": round(real.loss, 4), "blank inputs floor": round(floor, 4)},
            expected,
            f"no blank-input fit needed: a model given the same input in every row gets no "
            f"lower than {floor:.4g} on these targets, far above the real fit's {real.loss:.4g}",
        )
    if inconclusive(ctx, real, y):
        # the real fit is still learning (or at the tokens' frequencies): this probe cannot
        # fail, so the blank-input fit would cost a tiny fit for a pass that says nothing
        return Finding(
            "zero_input_baseline",
            "skip",
            {"real inputs loss": round(real.loss, 4)},
            expected,
            f"inconclusive: after {real.steps} steps the real-input fit is still learning (or "
            "sits at the label frequencies, which blank inputs give as well), so blank inputs "
            "could not be told apart yet; the fit on blank inputs was not run",
        )
    zero = fit_tiny(ctx, uninformative(x), y, steps=max(real.steps, 1), stop=False)
    measured = {"real inputs loss": round(real.loss, 4), "zero inputs loss": round(zero.loss, 4)}
    if not math.isfinite(zero.loss):
        return Finding(
            "zero_input_baseline",
            "skip",
            measured,
            expected,
            "the fit on blank inputs was not finite",
        )
    if apart(zero.loss):
        return Finding("zero_input_baseline", "pass", measured, expected)
    return Finding(
        "zero_input_baseline",
        "fail",
        measured,
        expected,
        "the model fits as well with blank inputs as with the real ones: its output "
        "does not depend on the input (inputs lost in the pipeline, or forward ignores x)",
    )


def blank_input_floor(ctx: Context, y: torch.Tensor) -> float | None:
    """The lowest value the task's loss can take on targets `y` for a model that gets the
    same input in every row (what blank inputs give it): its output can depend on the
    position within a row only, so the floor is each position's own spread of targets
    (entropy for cross-entropy losses, variance for MSE), averaged. None where the loss is
    not one of those, or is the model's own (it may shift its labels)."""
    name = ctx.loss_name
    if ctx.task.loss == MODEL or ctx.label_smoothing > 0:
        return None
    if name in ("cross_entropy", "nll") and not y.is_floating_point() and y.ndim >= 1:
        labels = y.long().reshape(len(y), -1)
        total, counted = 0.0, 0
        for column in labels.T:
            column = column[column != IGNORE_INDEX]
            if column.numel() == 0:
                continue
            p = torch.bincount(column - int(column.min())).double()
            p = p[p > 0] / p.sum()
            total += float(-(p * p.log()).sum()) * column.numel()
            counted += column.numel()
        return total / counted if counted else None
    rows = y.float().reshape(len(y), -1)
    if name == "mse":
        return float(rows.var(dim=0, unbiased=False).mean())
    if name in ("bce", "bce_prob") and bool(((rows == 0) | (rows == 1)).all()):
        p = rows.mean(dim=0).double()
        h = -(p * p.clamp_min(1e-12).log() + (1 - p) * (1 - p).clamp_min(1e-12).log())
        return float(h.mean())
    return None


def short_fit_vs_baseline(ctx: Context) -> Finding:
    """A short fit (`short_fit_steps` optimizer steps of the reference config) on the full
    training split must beat, on validation, what predicting the training labels' frequencies
    gives: its loss (cross-entropy losses) or the majority class's accuracy. Otherwise the
    labels do not go with the inputs. The fit stops half-way once it beats the baseline."""
    run, before = short_fit(ctx)
    half = ctx.cache.get("short_fit_half", {})
    metrics = half if ctx.cache.get("short_fit_early") else evaluate(run)
    got_loss = metrics["val_loss"]
    ok, measured, expected, inconclusive = _beats_baseline(ctx, run, metrics, before)
    majority = _label_baselines(ctx)[1] if ctx.kind not in ("custom", "regression") else 0.0
    done = f"after {run.steps} steps"
    if ok:
        return Finding("short_fit_vs_baseline", "pass", measured, expected)
    # still learning: validation better at the end than half-way through, and already above
    # the trivial baseline (a slow model at a low lr, not labels that do not fit the inputs)
    learning = (
        "val_loss" in half
        and got_loss < 0.97 * half["val_loss"]
        and (ctx.kind in ("custom", "regression") or metrics.get("val_accuracy", 0) > majority)
    )
    if learning:
        return Finding(
            "short_fit_vs_baseline",
            "pass",
            measured,
            expected,
            f"still learning {done}: validation loss fell from {half['val_loss']:.4g} "
            f"half-way to {got_loss:.4g}, above the baseline but not yet past it by the "
            "margin; a slow start (a low lr), not labels that miss the inputs",
        )
    if inconclusive:
        return Finding(
            "short_fit_vs_baseline",
            "skip",
            measured,
            expected,
            f"inconclusive: {done} the model still predicts about the tokens' frequencies, "
            "as sequence models do early on; a misalignment cannot be told from that yet",
        )
    return Finding(
        "short_fit_vs_baseline",
        "fail",
        measured,
        expected,
        "a short fit does not beat the trivial baseline on validation: " + _why_not(ctx, run),
    )


def _beats_baseline(
    ctx: Context, run: Run, metrics: dict[str, float], before: dict[str, float]
) -> tuple[bool, dict[str, object], str, bool]:
    """(beats the trivial baseline, measured, expected, inconclusive when it does not: a
    sequence model still at the tokens' frequencies)."""
    s = ctx.settings
    got_loss = metrics["val_loss"]
    done = f"after {run.steps} steps"
    if ctx.kind == "custom":
        start = before["val_loss"]
        measured: dict[str, object] = {"val_loss": got_loss, "at init": start}
        expected = f"val loss below 0.95 x its value at init {done}"
        return got_loss < start - 0.05 * abs(start), measured, expected, False
    if ctx.kind == "regression":
        _, y_tr = ctx.data.train.all()
        _, y_va = ctx.data.val.all()
        base = _regression_baseline(ctx, y_tr.float(), y_va.float())
        measured = {"val_loss": round(got_loss, 4), "predict-the-mean loss": round(base, 4)}
        expected = f"val loss < 0.9 x {base:.4g} {done}"
        return (
            ctx.loss_name not in ("mse", "l1") or got_loss < 0.9 * base,
            measured,
            expected,
            False,
        )
    prior_loss, majority, counted = _label_baselines(ctx)
    got = metrics.get("val_accuracy", math.nan)
    margin = max(s.short_fit_margin, 0.2 * (1 - majority))
    # many classes: a gain far outside the majority rate's sampling noise counts too
    z = (got - majority) / math.sqrt(max(majority * (1 - majority), 1e-12) / max(counted, 1))
    measured = {"val_accuracy": round(got, 4), "majority-class accuracy": round(majority, 4)}
    expected = f"val accuracy > {majority + margin:.3f} (or 1.2x the majority's, z > 4)"
    ok = got > majority + margin or (got > 1.2 * majority and z > 4)
    if prior_loss is not None:
        measured.update(
            {"val_loss": round(got_loss, 4), "predict-the-prior loss": round(prior_loss, 4)}
        )
        expected += f" or val loss < {0.95 * prior_loss:.4g}"
        ok = ok or got_loss < 0.95 * prior_loss
    expected += f" {done}"
    # per token (an LM): early on the model predicts the words' frequencies, on train
    # and validation alike; rare words only in validation weigh on its loss
    return ok, measured, expected, ctx.per_element


def _why_not(ctx: Context, run: Run) -> str:
    """The likeliest cause of a short fit that does not beat the baseline, from what the gate
    can see, before blaming the labels: the training loss did not move (lr, schedule,
    optimizer, weight decay); the validation inputs are scaled unlike the training inputs;
    one class dominates an unweighted loss. Misaligned labels when none of these shows."""
    moved, shrank = ctx.cache.get("short_fit_weights", (math.nan, math.nan))
    lr = float(run.params.get("lr", math.nan))
    decay = float(run.params.get("weight_decay", 0.0) or 0.0)
    peak = max(float(g.get("initial_lr", g["lr"])) for g in run.optimizer.param_groups)
    end = max(float(g["lr"]) for g in run.optimizer.param_groups)
    if peak > 0 and end < 0.01 * peak:
        return (
            f"the lr schedule is at {end:.2g} (from {peak:.2g}) after {run.steps} steps: it "
            "decays to 0 long before training ends (a scheduler stepped per batch with "
            "per-epoch settings, or too few total steps); step it per epoch or set its "
            "length in steps"
        )
    if math.isfinite(moved) and moved < 1e-3:
        return (
            f"the weights barely moved (|ΔW|/|W| = {moved:.2g} over the fit), so the model "
            f"did not train, whatever the labels: an lr too low (lr {lr:.3g}) or an "
            "optimizer holding other parameters than the model's"
        )
    faster = _at_higher_lr(ctx, run)
    if faster is not None:
        return (
            f"the same fit at lr {faster[0]:.3g} reaches val loss {faster[1]:.4g} against "
            f"{evaluate(run)['val_loss']:.4g} at lr {lr:.3g}: the lr is too low for this "
            "model, not the labels; raise it (lr_range_test gives the range)"
        )
    if math.isfinite(shrank) and shrank < 0.8 and decay > 0:
        return (
            f"weight decay {decay:g} shrinks the weights to {shrank:.0%} of their size "
            "within the fit, faster than the data can move them: lower weight_decay "
            "(1e-4 to 1e-2 is usual; AdamW's decoupled decay is scaled by the lr)"
        )
    shift = _scale_shift(ctx)
    if shift is not None and shift > 3.0:
        return (
            f"the validation inputs are scaled unlike the training inputs (their features sit "
            f"{shift:.1f} training standard deviations off on average): standardize the "
            "validation split with the training split's statistics"
        )
    majority = 0.0
    if ctx.kind not in ("custom", "regression"):
        _, majority, _ = _label_baselines(ctx)
    if majority >= 0.8:
        return (
            f"one class holds {majority:.0%} of the labels and the loss is unweighted, so "
            "predicting it is the easy minimum: weight the loss by class (or resample) and "
            "judge by a metric that sees the small classes"
        )
    return (
        "the weights move and a higher lr does no better on validation: labels are "
        "probably misaligned with the inputs (shuffled X and y separately, or a join on the "
        "wrong key)"
    )


def _at_higher_lr(ctx: Context, run: Run) -> tuple[float, float] | None:
    """(lr, validation loss) of the same short fit at 10x, then 100x the lr (at most 1),
    the first clearly better than the reference fit (below 0.9x its validation loss); else
    None. Labels that do not fit the inputs do not get better on validation at a higher lr,
    they are memorised faster."""
    lr = float(run.params.get("lr", 0.0) or 0.0)
    if not lr or not math.isfinite(lr):
        return None
    base = evaluate(run)["val_loss"]
    for factor in (10, 100):
        if lr * factor > 1.0:
            break
        params = {**run.params, "lr": factor * lr}
        fast = start_run(ctx.task, ctx.data, params, ctx.device, seed=ctx.seed)
        while fast.steps < run.steps:
            taken = fast.steps
            loss = train_epoch(fast, max_steps=run.steps - fast.steps)
            if not math.isfinite(loss) or fast.steps == taken:
                return None  # diverged: a higher lr is no better
        got = evaluate(fast)["val_loss"]
        if math.isfinite(got) and got < 0.9 * base:
            return factor * lr, got
    return None


def _scale_shift(ctx: Context) -> float | None:
    """How far the validation features' means sit from the training features', in training
    standard deviations (median over the features), or None for non-float inputs."""
    x_tr, _ = ctx.data.train.head(2048)
    x_va, _ = ctx.data.val.head(2048)
    if not (isinstance(x_tr, torch.Tensor) and x_tr.is_floating_point()) or x_tr.ndim < 2:
        return None
    assert isinstance(x_va, torch.Tensor)
    a, b = x_tr.reshape(len(x_tr), -1).float(), x_va.reshape(len(x_va), -1).float()
    sd = a.std(0)
    keep = sd > 1e-6
    if not bool(keep.any()) or len(a) < 2:
        return None
    return float(((b.mean(0) - a.mean(0)).abs()[keep] / sd[keep]).median())


def short_fit(ctx: Context) -> tuple[Run, dict[str, float]]:
    """The short fit's run (made once per gate: label_noise reads it too) and, for a custom
    task, its validation metrics before training; on the CPUs other processes left free."""
    if "short_fit" not in ctx.cache:
        with free_threads(ctx.cpu_share):
            ctx.cache["short_fit"] = _short_fit(ctx)
    return ctx.cache["short_fit"]


def _short_fit(ctx: Context) -> tuple[Run, dict[str, float]]:
    steps = ctx.settings.short_fit_min_steps
    params = {**ctx.params, "dropout": 0.0}
    params["batch_size"] = ctx.probe_batch(steps, cap=128)
    run = start_run(ctx.task, ctx.data, params, ctx.device, seed=ctx.seed)
    before = evaluate(run) if ctx.kind == "custom" else {}
    weights = [p.detach().clone() for p in run.model.parameters() if p.ndim >= 2]
    while run.steps < steps:
        taken = run.steps
        goal = steps // 2 if run.steps < steps // 2 else steps
        loss = train_epoch(run, max_steps=goal - run.steps)
        if run.steps >= steps // 2 and "short_fit_half" not in ctx.cache:
            half = ctx.cache["short_fit_half"] = evaluate(run)
            if _clear_at_half(ctx, run, half, before):
                ctx.cache["short_fit_early"] = True
                break
        if not math.isfinite(loss) or run.steps == taken:
            break
    after = [p.detach() for p in run.model.parameters() if p.ndim >= 2]
    if weights and len(after) == len(weights):
        size = math.sqrt(sum(float(w.float().pow(2).sum()) for w in weights)) or 1.0
        moved = math.sqrt(
            sum(float((a - w).float().pow(2).sum()) for a, w in zip(after, weights, strict=True))
        )
        now = math.sqrt(sum(float(a.float().pow(2).sum()) for a in after))
        ctx.cache["short_fit_weights"] = (moved / size, now / size)
    return run, before


def _clear_at_half(
    ctx: Context, run: Run, half: dict[str, float], before: dict[str, float]
) -> bool:
    """The short fit's verdict is clear half-way: it beats the baseline already, and (where
    label_noise reads the same model) validation is confident enough for that check too; or
    the targets are per token, where a fit not past the baseline is inconclusive (a sequence
    model sits at the tokens' frequencies for a while) and the rest could only make it pass."""
    ok, _, _, inconclusive = _beats_baseline(ctx, run, half, before)
    if inconclusive and not ok:
        return True  # per token: the fit cannot fail, only pass; not yet past half-way
    if not ok:
        return False
    reads = ctx.kind in ("multiclass", "binary") and not ctx.per_element
    reads = reads and "label_noise" not in ctx.settings.disabled
    return not reads or half.get("val_accuracy", 0.0) >= 0.75


def label_noise(ctx: Context) -> Finding:
    """Noisy training labels: among the short fit's most confident half of predictions, the
    training labels agree far less often than the validation labels do. The model learned
    what validation confirms, and a share of the training labels says otherwise (TheDeep-
    Checker's corrupted labels, judged against validation so a hard task is not blamed)."""
    s = ctx.settings
    expected = (
        f"training labels agree with confident predictions about as often as validation "
        f"labels (gap < {s.label_noise_gap:g})"
    )
    if ctx.kind not in ("multiclass", "binary") or ctx.per_element:
        return Finding("label_noise", "skip", f"{ctx.kind} task, per-sample classes only", "—")
    run, _ = short_fit(ctx)
    tr = _confident_accuracy(ctx, run, ctx.data.train)
    va = _confident_accuracy(ctx, run, ctx.data.val)
    if tr is None or va is None:
        return Finding("label_noise", "skip", "the model returns several outputs", "—")
    measured = {"train top-half accuracy": round(tr, 4), "val top-half accuracy": round(va, 4)}
    if va >= 0.6 and tr < va - s.label_noise_gap:
        share = (va - tr) / va
        return Finding(
            "label_noise",
            "fail",
            measured,
            expected,
            f"about {share:.0%} of the training labels contradict predictions the model makes "
            "confidently and validation confirms: the training labels are noisy or corrupted "
            "(a wrong mapping for part of the data, a shifted join, flipped labels); check how "
            "the training split was labelled",
        )
    return Finding("label_noise", "pass", measured, expected)


@torch.no_grad()
def _confident_accuracy(ctx: Context, run: Run, batches: Batches, rows: int = 1024) -> float | None:
    run.model.eval()
    x, y = batches.head(rows)
    out = forward(run.model, x)
    if not isinstance(out, torch.Tensor):
        return None
    out = out.float()
    if out.ndim > 1 and out.shape[-1] > 1:
        prob = out.softmax(-1) if ctx.loss_name != "nll" else out.exp()
        conf, pred = prob.max(-1)
    else:
        p = out.reshape(y.shape)
        p = p if ctx.loss_name == "bce_prob" else p.sigmoid()
        conf, pred = torch.maximum(p, 1 - p), (p > 0.5).long()
    top = conf.argsort(descending=True)[: max(1, len(conf) // 2)]
    return float((pred[top] == y.long()[top]).float().mean())


def _regression_baseline(ctx: Context, y_tr: torch.Tensor, y_va: torch.Tensor) -> float:
    if ctx.loss_name == "l1":
        return float((y_va - y_tr.median(dim=0).values).abs().mean())
    return float(((y_va - y_tr.mean(dim=0)) ** 2).mean())


def _label_baselines(ctx: Context) -> tuple[float | None, float, int]:
    """(validation loss of predicting the training labels' frequencies, or None where the
    loss is not a cross-entropy; the majority class's validation accuracy; the validation
    targets counted)."""
    if "label_baselines" not in ctx.cache:  # the short fit judges them twice (half-way, end)
        ctx.cache["label_baselines"] = _count_label_baselines(ctx)
    return ctx.cache["label_baselines"]


def _count_label_baselines(ctx: Context) -> tuple[float | None, float, int]:
    _, y_tr = ctx.data.train.all()
    _, y_va = ctx.data.val.all()
    if ctx.kind in ("binary", "multilabel"):
        p = y_tr.float().reshape(len(y_tr), -1).mean(0).clamp(1e-4, 1 - 1e-4)
        yv = y_va.float().reshape(len(y_va), -1)
        majority = float(((p > 0.5).float() == yv).float().mean())
        ce = -(yv * p.log() + (1 - yv) * (1 - p).log()).mean()
        prior = float(ce) if ctx.loss_name in ("bce", "bce_prob") else None
        return prior, majority, yv.numel()
    tr, va = y_tr.long().flatten(), y_va.long().flatten()
    tr, va = tr[tr != IGNORE_INDEX], va[va != IGNORE_INDEX]
    c = max(ctx.num_classes, int(tr.max()) + 1, int(va.max()) + 1)
    counts = torch.bincount(tr, minlength=c).double() + 1.0  # Laplace: unseen classes too
    log_p = (counts / counts.sum()).log()
    majority = float((va == int(counts.argmax())).double().mean())
    ce_like = ctx.loss_name in ("cross_entropy", "nll") and ctx.label_smoothing == 0
    return (float(-log_p[va].mean()) if ce_like else None), majority, va.numel()
