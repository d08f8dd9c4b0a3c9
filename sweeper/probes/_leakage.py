"""Data that give the answer away, or give too little: the label inside the inputs, and a
loader that returns the same few rows whatever the index."""

from __future__ import annotations

import torch

from sweeper.probes._context import Context
from sweeper.probes._finding import Finding, fmt
from sweeper.training import IGNORE_INDEX, leaves


def label_leakage(ctx: Context, rows: int = 4096) -> Finding:
    """A target that can be read off the inputs: sequence targets equal to an integer input
    (an LM trained without shifting), or one feature column of a table that predicts the
    label alone (nearest class mean on that column, train and validation alike) or, for a
    regression, correlates with it at |r| ≥ `leak_correlation`."""
    s = ctx.settings
    expected = (
        f"no input equal to the targets; no single feature predicting them "
        f"(≥ {s.leak_accuracy:.1%} accuracy or |r| ≥ {s.leak_correlation})"
    )
    if ctx.kind == "custom":
        return Finding("label_leakage", "skip", "custom task: the targets may be the inputs", "—")
    found: dict[str, tuple[str, float] | None] = {}
    for split in ("train", "val"):
        x, y = (ctx.data.train if split == "train" else ctx.data.val).head(rows)
        found[split] = _copied(x, y) or _predictive_column(ctx, x, y)
    hit = found["train"]
    if hit is not None and found["val"] is not None:
        name, score = hit
        what = (
            f"the targets equal {name} at {score:.0%} of positions: the target "
            "sequence was not shifted (predict token t+1 from tokens ≤ t: y = ids[:, 1:], "
            "x = ids[:, :-1])"
            if name.startswith("input")
            else f"feature {name} alone predicts the target ({fmt(score)}): the label (or "
            "something computed from it) is among the inputs; drop that column"
        )
        return Finding("label_leakage", "fail", {"where": name, "score": score}, expected, what)
    return Finding("label_leakage", "pass", "no leak found", expected)


def _copied(x: object, y: torch.Tensor) -> tuple[str, float] | None:
    for name, t in leaves(x):
        if t.is_floating_point() or tuple(t.shape) != tuple(y.shape) or y.ndim < 2:
            continue
        valid = y != IGNORE_INDEX
        same = float(((t == y) & valid).sum()) / max(int(valid.sum()), 1)
        if same >= 0.9:
            return f"input {name or 'x'}", round(same, 3)
    return None


def _predictive_column(ctx: Context, x: object, y: torch.Tensor) -> tuple[str, float] | None:
    tables = [t for _, t in leaves(x) if t.is_floating_point() and t.ndim == 2]
    if len(tables) != 1 or y.ndim != 1 or len(y) < 20:
        return None
    table = tables[0].double()
    s = ctx.settings
    if ctx.kind == "regression":
        yc = y.double() - y.double().mean()
        xc = table - table.mean(0)
        r = (xc * yc[:, None]).sum(0) / (xc.norm(dim=0) * yc.norm()).clamp_min(1e-12)
        col = int(r.abs().argmax())
        if float(r[col].abs()) < s.leak_correlation:
            return None
        return f"column {col}", round(float(r[col]), 4)
    labels = y.long()
    classes = labels.unique()
    if len(classes) < 2:
        return None
    majority = float((labels == labels.mode().values).double().mean())
    means = torch.stack([table[labels == c].mean(0) for c in classes])  # (C, F)
    nearest = (table[None] - means[:, None]).abs().argmin(0)  # (N, F): class index per column
    accuracy = (classes[nearest] == labels[:, None]).double().mean(0)
    col = int(accuracy.argmax())
    best = float(accuracy[col])
    if best >= s.leak_accuracy and best > majority + 0.5 * (1 - majority):
        return f"column {col}", round(best, 4)
    return None


def duplicate_samples(ctx: Context, rows: int = 512) -> Finding:
    """The first training rows are mostly distinct: a Dataset whose __getitem__ ignores its
    index (re-seeds an RNG, returns a cached item) repeats the same few samples."""
    x, y = ctx.data.train.head(rows)
    parts = [t.reshape(len(t), -1).double() for _, t in leaves(x)]
    parts.append(y.reshape(len(y), -1).double())
    table = torch.cat(parts, dim=1).cpu()
    distinct = len(torch.unique(table, dim=0))
    share = distinct / max(len(table), 1)
    limit = ctx.settings.duplicate_share_min
    measured = f"{distinct} distinct of {len(table)} rows"
    expected = f"≥ {limit:.0%} of the first {len(table)} training rows distinct"
    if share < limit:
        return Finding(
            "duplicate_samples",
            "fail",
            measured,
            expected,
            f"the training data repeat the same rows ({distinct} distinct of {len(table)}): "
            "a Dataset whose __getitem__ ignores its index (re-seeds its RNG, returns a cached "
            "or fixed item) or a loader that duplicates; make item i depend on i",
        )
    return Finding("duplicate_samples", "pass", measured, expected)
