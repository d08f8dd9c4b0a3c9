"""Loss by name or callable, and the metrics every trial reports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _bce(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(out.reshape(y.shape), y)


def _mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(out.reshape(y.shape), y)


def _l1(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(out.reshape(y.shape), y)


_NAMED: dict[str, LossFn] = {
    "cross_entropy": F.cross_entropy,
    "nll": F.nll_loss,
    "bce": _bce,
    "mse": _mse,
    "l1": _l1,
}


def resolve_loss(loss: str | Callable[..., Any]) -> LossFn:
    if callable(loss):
        return loss
    return _NAMED[loss]


def correct(out: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """Number of correct predictions in a batch (classification only)."""
    if out.ndim > 1 and out.shape[-1] > 1:
        pred = out.argmax(dim=-1)
        return (pred == y.long()).sum()
    return ((out.reshape(y.shape) > 0).to(y.dtype) == y).sum()
