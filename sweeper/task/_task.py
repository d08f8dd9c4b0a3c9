"""The one object a user writes: what to train, on what data, with which loss."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from sweeper.errors import TaskError

if TYPE_CHECKING:
    import torch
    from torch.utils.data import Dataset

    Data = Union[tuple[Any, Any], Dataset]  # noqa: UP007
    LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

KINDS = ("multiclass", "binary", "regression")
LOSSES = ("cross_entropy", "nll", "bce", "mse", "l1")
_LOSS_KIND = {"cross_entropy": "multiclass", "nll": "multiclass", "bce": "binary"}


@dataclass
class Task:
    """What sweeper trains for every probe and every trial.

    build_model: called with the trial's params (a dict: lr, batch_size, dropout, init and any
        extra search parameter) and returns a fresh ``torch.nn.Module``. sweeper applies the
        trial's init scheme to it afterwards; use ``params["dropout"]`` for dropout layers.
    train, val: ``(X, y)`` pairs of tensors or numpy arrays, or ``torch.utils.data.Dataset``s
        yielding ``(x, y)``. Tensor pairs are kept on the trial's device and batched by indexing.
    loss: ``"cross_entropy"``, ``"nll"``, ``"bce"`` (with logits), ``"mse"``, ``"l1"``, or any
        callable ``loss(output, target) -> scalar tensor``.
    kind: ``"multiclass"``, ``"binary"`` or ``"regression"``.
    num_classes: number of classes (multiclass; 2 for binary).
    """

    build_model: Callable[[dict[str, Any]], Any]
    train: Any
    val: Any
    loss: str | Callable[..., Any] = "cross_entropy"
    kind: str = "multiclass"
    num_classes: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if not callable(self.build_model):
            problems.append("build_model must be a callable taking the params dict")
        if self.kind not in KINDS:
            problems.append(f"kind must be one of {list(KINDS)}, got {self.kind!r}")
        if isinstance(self.loss, str):
            if self.loss not in LOSSES:
                problems.append(
                    f"loss must be one of {list(LOSSES)} or a callable, got {self.loss!r}"
                )
            elif self.kind in KINDS and _LOSS_KIND.get(self.loss, self.kind) != self.kind:
                want = _LOSS_KIND[self.loss]
                problems.append(f"loss {self.loss!r} is for kind={want!r}, not {self.kind!r}")
        elif not callable(self.loss):
            problems.append("loss must be a name or a callable (output, target) -> tensor")
        if self.kind == "binary" and self.num_classes is None:
            self.num_classes = 2
        if self.kind == "multiclass" and (self.num_classes is None or self.num_classes < 2):
            problems.append(
                f"num_classes must be >= 2 for kind='multiclass', got {self.num_classes}"
            )
        for name in ("train", "val"):
            problems.extend(_check_data(name, getattr(self, name)))
        if problems:
            raise TaskError("invalid sweeper.Task: " + "; ".join(problems))

    @property
    def uses_tensors(self) -> bool:
        return isinstance(self.train, tuple) and isinstance(self.val, tuple)


def _check_data(name: str, data: Any) -> list[str]:
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            return [f"{name} must be an (X, y) pair, got {len(data)} items"]
        x, y = data
        if not hasattr(x, "shape") or not hasattr(y, "shape"):
            return [f"{name} (X, y) must be tensors or numpy arrays"]
        if len(x) != len(y):
            return [f"{name}: X has {len(x)} rows but y has {len(y)}"]
        if len(x) == 0:
            return [f"{name} is empty"]
        return []
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        return [] if len(data) > 0 else [f"{name} dataset is empty"]
    return [f"{name} must be an (X, y) pair or a torch Dataset, got {type(data).__name__}"]
