"""Loss by name or callable, what a loss expects of the output, and the accuracy every
classification trial reports.

Class dimension: PyTorch's losses take the classes in dim 1 ((N, C) or (N, C, d1, ...), the
target (N, d1, ...)); Hugging Face models give token logits as (N, T, C). sweeper's named
losses and its accuracy take both: when the output has one more dimension than the target, the
classes are in dim 1 if the other dimensions line up that way, else in the last dimension.
Targets equal to -100 (PyTorch's ignore_index, Hugging Face's padding label) count nowhere.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from sweeper.training._data import Inputs, forward

LossFn = Callable[[Any, torch.Tensor], torch.Tensor]
IGNORE_INDEX = -100
MODEL = "model"  # Task(loss="model"): the model computes its own loss
# the loss a model's own loss stands for where sweeper needs one of (output, target): the output
# checks and the baselines (a Hugging Face head's loss for its problem type)
_KIND_LOSS = {
    "multiclass": "cross_entropy",
    "binary": "bce",
    "multilabel": "bce",
    "regression": "mse",
}


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


def resolve_loss(loss: str | Callable[..., Any], kind: str | None = None) -> LossFn:
    """The loss function of (output, target) for a task's `loss`: a named loss (class-dimension
    aware, `-100` ignored) or the task's own callable. For ``"model"``, the named loss of the
    task's `kind` (what a classification or regression head computes): only the checks that
    judge outputs use it, the training steps take the model's own loss (`batch_loss`)."""
    if callable(loss):
        return loss
    if loss == MODEL:
        named = _KIND_LOSS.get(kind or "")
        if named is None:
            return _no_output_loss
        return _NAMED[named]
    return _NAMED[loss]


def _no_output_loss(out: Any, y: torch.Tensor) -> torch.Tensor:
    raise TypeError(
        "loss='model' with kind='custom': sweeper has no loss of (output, target) for this "
        "model; only its own loss (training_step, or labels=) is known"
    )


def model_loss(model: torch.nn.Module, x: Inputs, y: torch.Tensor) -> torch.Tensor:
    """The loss a model computes itself (``Task(loss="model")``): a LightningModule's
    ``training_step((x, y), 0)`` (the tensor it returns, or its dict's ``"loss"``), else the
    model called with ``labels=y``, as a Hugging Face model computes its own loss."""
    step = getattr(model, "training_step", None)
    if callable(step):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # self.log() outside a Trainer warns and does nothing
            out = step((x, y), 0)
    elif isinstance(x, dict):  # with labels=, the output hook leaves the output (and its loss)
        out = model(**x, labels=y)
    elif isinstance(x, (tuple, list)):
        out = model(*x, labels=y)
    else:
        out = model(x, labels=y)
    if isinstance(out, dict):
        loss = out.get("loss")
    else:
        loss = out if isinstance(out, torch.Tensor) else getattr(out, "loss", None)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise NoLossError(_no_loss(model, out, callable(step)))
    return loss.reshape(()).float()


class NoLossError(TypeError):
    """The model's own loss (``loss="model"``) is missing: a cause of its own, which no other
    finding explains (a `training_step` without `return loss`, a model with no loss head)."""


def _no_loss(model: torch.nn.Module, out: Any, lightning: bool) -> str:
    """Why a model's own loss is missing, in its framework's terms and at the user's line."""
    cls = type(model).__name__
    got = "None" if out is None else type(out).__name__
    if lightning:
        where = _source_of(getattr(type(model), "training_step", None))
        return (
            f"{cls}.training_step{where} returned {got}, not the loss: Lightning's "
            "training_step must return the loss tensor or a dict with a 'loss' key; add "
            "`return loss` at its end"
        )
    return (
        f"{cls}(..., labels=...) returned {got} without a scalar .loss: the model computes no "
        "loss from labels (a base model without a task head, or labels under another "
        "name); use a class with a head (AutoModelFor...), or give the task a named loss "
        "or a loss(output, target)"
    )


def _source_of(fn: Any) -> str:
    """ " (file:line)" where a function is defined, or ""."""
    try:
        return f" ({inspect.getsourcefile(fn)}:{inspect.getsourcelines(fn)[1]})"
    except (OSError, TypeError):
        return ""


def batch_loss(
    loss: str | Callable[..., Any], model: torch.nn.Module, x: Inputs, y: torch.Tensor
) -> torch.Tensor:
    """The task's loss on one batch, as its training computes it: the model's own
    (`model_loss`) for ``"model"``, else the loss of the model's output."""
    if loss == MODEL:
        return model_loss(model, x, y)
    return resolve_loss(loss)(forward(model, x), y)


def loss_name(loss: str | Callable[..., Any], kind: str | None = None) -> str:
    """What a loss computes: cross_entropy, nll, bce (with logits), bce_prob (BCELoss on
    probabilities), mse, l1, or custom for any other callable; a model's own loss (``"model"``)
    stands for its kind's loss."""
    if loss == MODEL:
        return _KIND_LOSS.get(kind or "", "custom")
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
