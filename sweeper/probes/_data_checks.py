"""Checks of the data itself, before any model sees it."""

from __future__ import annotations

import math

import torch

from sweeper.probes._context import Context
from sweeper.probes._finding import Finding, Verdict, fmt
from sweeper.training import IGNORE_INDEX, Inputs, leaves


def _sample(ctx: Context, split: str, rows: int = 4096) -> tuple[Inputs, torch.Tensor]:
    batches = ctx.data.train if split == "train" else ctx.data.val
    return batches.head(rows)


def data_finite(ctx: Context) -> Finding:
    """No NaN or inf in a sample of the inputs and targets of both splits."""
    bad = {}
    for split in ("train", "val"):
        x, y = _sample(ctx, split)
        nx = sum(int((~torch.isfinite(t)).sum().item()) for _, t in _float_leaves(x))
        ny = int((~torch.isfinite(y.float())).sum().item())
        if nx or ny:
            bad[split] = {"inputs": nx, "targets": ny}
    if bad:
        return Finding(
            "data_finite",
            "fail",
            bad,
            "no NaN or inf values",
            "the data hold NaN/inf: impute or drop those rows before training "
            "(check for division by a zero std in normalization)",
        )
    return Finding("data_finite", "pass", 0, "no NaN or inf values")


def labels_in_range(ctx: Context) -> Finding:
    """Class indices in [0, num_classes) (-100, PyTorch's ignore_index, allowed), binary and
    multi-label targets in {0, 1}."""
    if ctx.kind in ("regression", "custom"):
        return Finding("labels_in_range", "skip", f"{ctx.kind} task: no classes", "—")
    lo_ok, hi = 0, ctx.num_classes - 1
    seen: list[float] = []
    for split in ("train", "val"):
        _, y = _sample(ctx, split, rows=1 << 30)
        yf = y.float()
        if ctx.kind == "multiclass":
            yf = yf[yf != IGNORE_INDEX]
            if yf.numel() == 0:
                continue
        seen += [float(yf.min().item()), float(yf.max().item())]
        if ctx.kind == "binary" and _multilabel_shaped(ctx, y):
            return Finding(
                "labels_in_range",
                "fail",
                f"targets of shape {tuple(y.shape)} for inputs of one row each",
                "one 0/1 target per sample (or per position of a sequence)",
                f"each sample has {y.shape[1]} separate 0/1 targets, as in a multi-label "
                "task, but the task says kind='binary': declare kind='multilabel' (the "
                "probes, the metrics and the chance levels then count per label)",
            )
        if ctx.kind in ("binary", "multilabel"):
            if not torch.all((yf == 0) | (yf == 1)):
                return Finding(
                    "labels_in_range",
                    "fail",
                    sorted(set(seen)),
                    f"{ctx.kind} targets in {{0, 1}}",
                    f"{split} targets are not all 0/1: map the classes to 0 and 1",
                )
        elif not torch.all(yf == yf.round()):
            odd = yf[yf != yf.round()]
            return Finding(
                "labels_in_range",
                "fail",
                [min(seen), max(seen)],
                f"integer labels in [0, {hi}]",
                f"{split} labels are not whole numbers (e.g. {float(odd[0]):.4g}), so they "
                "are no class ids: were they scaled along with the inputs (divided by 255, "
                "standardized)? Scale the inputs only, and keep the labels 0..C-1",
            )
        elif not torch.all((yf >= lo_ok) & (yf <= hi)):
            return Finding(
                "labels_in_range",
                "fail",
                [min(seen), max(seen)],
                f"integer labels in [0, {hi}]",
                f"{split} labels fall outside [0, num_classes): re-encode them as "
                "0..C-1 or fix num_classes",
            )
    return Finding(
        "labels_in_range",
        "pass",
        [min(seen), max(seen)] if seen else "every target is -100 (ignored)",
        f"labels in [0, {hi}]" if ctx.kind == "multiclass" else "{0, 1}",
    )


def _multilabel_shaped(ctx: Context, y: torch.Tensor) -> bool:
    """(N, K) targets, K > 1, for plain feature rows (N, F): K labels per sample. Targets
    per position need sequence inputs (token ids, or (N, T, F)), which this is not."""
    if y.ndim != 2 or y.shape[1] < 2:
        return False
    x, _ = ctx.data.train.head(2)
    return isinstance(x, torch.Tensor) and x.is_floating_point() and x.ndim == 2


def _float_leaves(x: Inputs) -> list[tuple[str, torch.Tensor]]:
    return [(n, t) for n, t in leaves(x) if t.is_floating_point()]


def _features(x: Inputs) -> torch.Tensor | None:
    """The floating-point inputs as one (samples, features) matrix; None when there are none
    (token ids, masks and other integer inputs are categories, not scaled quantities).

    A feature is what shares one scale: a column of a table; a channel of an image or a
    volume (N, C, H, W, ...), whose pixels are samples too (a frame's border is nearly
    constant in any photo); the last axis of a sequence (N, T, F)."""
    parts = []
    for _, t in _float_leaves(x):
        if t.ndim >= 4:
            t = t.movedim(1, -1)
        if t.ndim >= 3:
            t = t.reshape(-1, t.shape[-1])
        parts.append(t.reshape(len(t), -1).double())
    if not parts:
        return None
    if len({len(p) for p in parts}) > 1:  # an image beside a table: judge the largest
        parts = [max(parts, key=lambda p: p.shape[1])]
    return torch.cat(parts, dim=1)


def _integer_inputs(what: str) -> str:
    return f"not applicable: the inputs are integer (token ids or categories); {what}"


def data_scale(ctx: Context) -> Finding:
    """Inputs standardized (mean ≈ 0, std ≈ 1) or bounded, and features on comparable scales."""
    x = _features(_sample(ctx, "train")[0])
    if x is None:
        return Finding("data_scale", "skip", _integer_inputs("no scale to check"), "—")
    x = x[:, torch.isfinite(x).all(0)]
    std = x.std(0)
    live = std > 1e-8
    if not bool(live.any()):
        return Finding("data_scale", "pass", "no varying feature", "see constant_features")
    mean_abs = float(x.mean(0).abs()[live].median())
    med_std = float(std[live].median())
    spread = float(std[live].max() / std[live].min())
    measured = {
        "median |mean|": round(mean_abs, 3),
        "median std": round(med_std, 3),
        "std max/min": round(spread, 1),
    }
    s = ctx.settings
    warn, fail = s.data_scale_warn, s.data_scale_fail
    expected = (
        f"median |mean| ≤ {warn:g}, median std ≤ {warn:g}, std max/min ≤ "
        f"{s.feature_spread_warn:g} (standardized or bounded)"
    )
    if med_std > fail or mean_abs > fail or spread > s.feature_spread_fail:
        hint = (
            "inputs are not normalized: subtract the train-split mean and divide by its std "
            "(e.g. pixels in 0–255: divide by 255, then standardize)"
        )
        if spread > s.feature_spread_fail:
            hint = (
                f"features differ in scale by {spread:.0e}x: standardize each feature with "
                "train-split statistics"
            )
        return Finding("data_scale", "fail", measured, expected, hint)
    if med_std > warn or mean_abs > warn or spread > s.feature_spread_warn:
        return Finding(
            "data_scale",
            "warn",
            measured,
            expected,
            "inputs are not standardized: subtract the train-split mean, divide by "
            "the train-split std",
        )
    return Finding("data_scale", "pass", measured, expected)


def constant_features(ctx: Context) -> Finding:
    """The share of input features that never vary in the training sample."""
    x = _features(_sample(ctx, "train")[0])
    if x is None:
        return Finding("constant_features", "skip", _integer_inputs("nothing to check"), "—")
    const = (x.std(0) <= 1e-8) if len(x) > 1 else torch.ones(x.shape[1], dtype=torch.bool)
    n, total = int(const.sum()), x.shape[1]
    share = ctx.settings.constant_features_warn
    expected = f"inputs that vary; ≤ {share:.0%} constant features"
    if n == total:
        return Finding(
            "constant_features",
            "fail",
            f"{n}/{total} constant",
            expected,
            "every input feature is constant (all zero?): the input pipeline lost the "
            "data (a mask, a wrong column, a normalization dividing by 0)",
        )
    if n > share * total:
        return Finding(
            "constant_features",
            "warn",
            f"{n}/{total} constant",
            expected,
            "many features never change: drop them, or check the feature pipeline",
        )
    return Finding("constant_features", "pass", f"{n}/{total} constant", expected)


def class_balance(ctx: Context) -> Finding:
    """How evenly the classes are used, (e^H-1)/(C-1): 1 uniform, 0 a single class. Judged for
    per-sample classes; tokens of a vocabulary follow Zipf's law by nature."""
    if ctx.kind in ("regression", "custom", "multilabel"):
        return Finding("class_balance", "skip", f"{ctx.kind} task", "—")
    _, y = _sample(ctx, "train", rows=1 << 30)
    if ctx.per_element:
        return Finding(
            "class_balance", "skip", "per-token or per-pixel classes (imbalanced by nature)", "—"
        )
    c = ctx.num_classes
    y = y[y != IGNORE_INDEX]
    counts = torch.bincount(y.long().clamp(0, c - 1).flatten(), minlength=c).double()
    p = counts / counts.sum()
    h = float(-(p[p > 0] * p[p > 0].log()).sum())
    balance = (math.exp(h) - 1) / (c - 1)
    least = ctx.settings.class_balance_warn
    expected = f"balance (e^H−1)/(C−1) ≥ {least:g}"
    if int((counts > 0).sum()) == 1 and c >= 2:
        only = int(counts.argmax())
        return Finding(
            "class_balance",
            "fail",
            round(balance, 3),
            expected,
            f"every training label is class {only}: a classifier learns nothing from one "
            "class. Were the labels transformed along with the inputs (scaled, cast to int, "
            "filtered), or is the split taken from a sorted file?",
        )
    if balance < least:
        return Finding(
            "class_balance",
            "warn",
            round(balance, 3),
            expected,
            f"classes are imbalanced (largest {float(p.max()):.0%}): accuracy can look "
            "good while a class is ignored; consider class weights or another metric",
        )
    return Finding("class_balance", "pass", round(balance, 3), expected)


def _row_bytes(x: Inputs) -> list[bytes]:
    """Each row of every input tensor together, as bytes (equal rows, equal bytes)."""
    parts = [t.reshape(len(t), -1).double() for _, t in leaves(x)]
    rows = torch.cat(parts, dim=1).cpu().numpy()
    return [r.tobytes() for r in rows]


def train_val_overlap(ctx: Context) -> Finding:
    """The share of validation rows that also appear in the training split."""
    x_tr, _ = _sample(ctx, "train", rows=1 << 30)
    x_va, _ = _sample(ctx, "val", rows=1 << 30)
    train_rows = set(_row_bytes(x_tr))
    val_rows = _row_bytes(x_va)
    shared = sum(r in train_rows for r in val_rows)
    frac = shared / max(len(val_rows), 1)
    s = ctx.settings
    expected = f"≤ {s.overlap_warn:.0%} of validation rows also in train"
    measured = f"{shared}/{len(val_rows)} ({frac:.1%})"
    if frac > s.overlap_fail:
        return Finding(
            "train_val_overlap",
            "fail",
            measured,
            expected,
            "validation rows also appear in training: the validation score is "
            "inflated; split before augmenting/duplicating and deduplicate",
        )
    if frac > s.overlap_warn:
        return Finding(
            "train_val_overlap",
            "warn",
            measured,
            expected,
            "some validation rows also appear in training; deduplicate the split",
        )
    return Finding("train_val_overlap", "pass", measured, expected)


def data_order(ctx: Context, batch: int = 32, batches: int = 4) -> Finding:
    """The data sorted by label and split by position: the first batches each hold a single
    label, and validation has classes training never shows.

    Classes only in validation are normal for a vocabulary (rare words, Zipf's law): with
    more than `vocabulary` classes and no sorted batches, they are noted, not judged."""
    if ctx.kind in ("regression", "custom", "multilabel"):
        return Finding("data_order", "skip", f"{ctx.kind} task", "—")
    _, y = _sample(ctx, "train", rows=batch * batches)
    _, y_va = _sample(ctx, "val", rows=1 << 30)
    _, y_tr = _sample(ctx, "train", rows=1 << 30)
    single = sum(
        int(_labels(y[i : i + batch]).unique().numel() == 1) for i in range(0, len(y), batch)
    )
    va = _labels(y_va)
    unseen = sorted(set(va.tolist()) - set(_labels(y_tr).tolist()))
    share = (
        float(torch.isin(va, torch.tensor(unseen, dtype=va.dtype)).float().mean())
        if unseen
        else 0.0
    )
    expected = "mixed labels in the first batches; every validation class seen in training"
    measured = {
        "single-label batches": f"{single}/{batches}",
        "val classes unseen": unseen,
        "val targets of unseen classes": f"{share:.1%}",
    }
    sorted_data = single >= batches
    vocabulary = ctx.num_classes > 100 or ctx.per_element
    if unseen and (sorted_data or not vocabulary):
        verdict: Verdict = "fail" if sorted_data or share > 0.2 else "warn"
        return Finding(
            "data_order",
            verdict,
            measured,
            expected,
            f"validation has classes {fmt(unseen[:5])} ({share:.0%} of its targets) that "
            "training never shows: "
            + (
                "the data are sorted by label and were split by position; shuffle before "
                "splitting (stratify=y)"
                if sorted_data
                else "the model cannot learn them; split with stratify=y, or check the "
                "label encoding of the two splits"
            ),
        )
    if sorted_data:
        return Finding(
            "data_order",
            "warn",
            measured,
            expected,
            "the data are sorted by label (unshuffled): sweeper shuffles its own "
            "batches, but shuffle before any split or loader of your own",
        )
    hint = (
        f"{len(unseen)} classes occur only in validation ({share:.1%} of its targets): usual "
        "for a vocabulary"
        if unseen
        else ""
    )
    return Finding("data_order", "pass", measured, expected, hint)


def _labels(y: torch.Tensor) -> torch.Tensor:
    """Class indices, flattened, without the ignored ones (-100)."""
    y = y.long().flatten()
    return y[y != IGNORE_INDEX]
