"""Loss by name or callable, what a loss expects of the output, and the accuracy every
classification trial reports.

Class dimension: PyTorch's losses take the classes in dim 1 ((N, C) or (N, C, d1, ...), the
target (N, d1, ...)); Hugging Face models give token logits as (N, T, C). sweeper's named
losses and its accuracy take both: when the output has one more dimension than the target, the
classes are in dim 1 if the other dimensions line up that way, else in the last dimension.
Targets equal to -100 (PyTorch's ignore_index, Hugging Face's padding label) count nowhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

LossFn = Callable[[Any, torch.Tensor], torch.Tensor]
IGNORE_INDEX = -100


def class_dim(out: torch.Tensor, y: torch.Tensor) -> int:
    """The dimension of `out` that holds the classes for class-index targets `y`."""
    if out.ndim == y.ndim + 1 and out.ndim > 2:
        if out.shape[0] == y.shape[0] and tuple(out.shape[2:]) == tuple(y.shape[1:]):
            return 1  # PyTorch's convention: (N, C, d1, ...)
        if tuple(out.shape[:-1]) == tuple(y.shape):
            return out.ndim - 1  # (N, T, C), as Hugging Face models give token logits
    return 1 if out.ndim > 1 else 0


def _classes_in_dim1(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    dim = class_dim(out, y)
    return out.movedim(dim, 1) if dim not in (0, 1) else out


def _cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(_classes_in_dim1(out, y), y)


def _nll(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.nll_loss(_classes_in_dim1(out, y), y)


def _bce(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(out.reshape(y.shape), y)


def _mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(out.reshape(y.shape), y)


def _l1(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(out.reshape(y.shape), y)


_NAMED: dict[str, LossFn] = {
    "cross_entropy": _cross_entropy,
    "nll": _nll,
    "bce": _bce,
    "mse": _mse,
    "l1": _l1,
}
# PyTorch's loss classes and functions, by what they compute
_KNOWN = {
    "CrossEntropyLoss": "cross_entropy",
    "cross_entropy": "cross_entropy",
    "NLLLoss": "nll",
    "nll_loss": "nll",
    "BCEWithLogitsLoss": "bce",
    "binary_cross_entropy_with_logits": "bce",
    "BCELoss": "bce_prob",
    "binary_cross_entropy": "bce_prob",
    "MSELoss": "mse",
    "mse_loss": "mse",
    "L1Loss": "l1",
    "l1_loss": "l1",
}


def resolve_loss(loss: str | Callable[..., Any]) -> LossFn:
    """The loss function for a task's `loss`: a named loss (class-dimension aware, `-100` ignored)
    or the task's own callable."""
    if callable(loss):
        return loss
    return _NAMED[loss]


def loss_name(loss: str | Callable[..., Any]) -> str:
    """What a loss computes: cross_entropy, nll, bce (with logits), bce_prob (BCELoss on
    probabilities), mse, l1, or custom for any other callable."""
    if isinstance(loss, str):
        return loss
    name = getattr(loss, "__name__", type(loss).__name__)
    return _KNOWN.get(name, "custom")


def correct(
    out: torch.Tensor, y: torch.Tensor, threshold: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(right, counted) predictions in a batch: per sample, per token or per pixel for class
    indices (targets of -100 not counted), per label for binary and multi-label targets
    (`threshold` on the output: 0 for logits, 0.5 for probabilities; None: 0.5 when every
    output lies in [0, 1], else 0)."""
    if out.ndim > y.ndim and out.shape[class_dim(out, y)] > 1:
        pred = out.argmax(dim=class_dim(out, y))
        valid = y != IGNORE_INDEX
        return ((pred == y.long()) & valid).sum(), valid.sum()
    flat = out.reshape(y.shape)
    if threshold is None:
        threshold = 0.5 if bool(((flat >= 0) & (flat <= 1)).all()) else 0.0
    right = ((flat > threshold).to(y.dtype) == y).sum()
    return right, torch.tensor(y.numel(), device=y.device)


def decision_threshold(loss: str | Callable[..., Any]) -> float | None:
    """Where a binary output turns positive for this loss (None: judged from the output)."""
    name = loss_name(loss)
    return {"bce": 0.0, "bce_prob": 0.5}.get(name)
