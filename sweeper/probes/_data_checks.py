"""Checks of the data itself, before any model sees it."""

from __future__ import annotations

import torch

from sweeper.probes._context import Context
from sweeper.probes._finding import Finding


def _sample(ctx: Context, split: str, rows: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    batches = ctx.data.train if split == "train" else ctx.data.val
    return batches.head(rows)


def data_finite(ctx: Context) -> Finding:
    bad = {}
    for split in ("train", "val"):
        x, y = _sample(ctx, split)
        nx = int((~torch.isfinite(x)).sum().item())
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
    if ctx.kind == "regression":
        return Finding("labels_in_range", "pass", "regression", "any real target")
    lo_ok, hi = 0, ctx.num_classes - 1
    seen: list[float] = []
    for split in ("train", "val"):
        _, y = _sample(ctx, split, rows=1 << 30)
        yf = y.float()
        seen += [float(yf.min().item()), float(yf.max().item())]
        if ctx.kind == "binary":
            if not torch.all((yf == 0) | (yf == 1)):
                return Finding(
                    "labels_in_range",
                    "fail",
                    sorted(set(seen)),
                    "binary targets in {0, 1}",
                    f"{split} targets are not all 0/1: map the classes to 0 and 1",
                )
        elif not torch.all((yf >= lo_ok) & (yf <= hi) & (yf == yf.round())):
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
        [min(seen), max(seen)],
        f"labels in [0, {hi}]" if ctx.kind == "multiclass" else "{0, 1}",
    )
