"""The one object a user writes: what to train, on what data, with which loss, and how."""

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

KINDS = ("multiclass", "binary", "multilabel", "regression", "custom")
LOSSES = ("cross_entropy", "nll", "bce", "mse", "l1", "model")
_LOSS_KINDS = {
    "cross_entropy": ("multiclass",),
    "nll": ("multiclass",),
    "bce": ("binary", "multilabel"),
}
_HOOKS = ("optimizer", "scheduler", "metrics", "collate_fn", "fit")
# DataLoader options sweeper sets itself (the trial's batch size, shuffled training order)
_OWN_LOADER_OPTIONS = ("batch_size", "shuffle", "sampler", "batch_sampler", "collate_fn")


@dataclass
class Task:
    """What sweeper trains for every probe and every trial.

    build_model: called with the trial's params (a dict: lr, batch_size, dropout, init and any
        extra search parameter) and returns a ``torch.nn.Module``. sweeper leaves the model
        as built (init scheme ``none``) unless the search names another scheme; use
        ``params["dropout"]`` for dropout layers.
    train, val: ``(X, y)`` pairs or ``torch.utils.data.Dataset``s yielding ``(x, y)``. ``X``
        may be a tensor or numpy array of any dtype (integer token ids stay integers), a
        tuple of them (the model is called as ``model(*x)``) or a dict (``model(**x)``).
        Tensor pairs are kept on the trial's device and batched by indexing.
    loss: ``"cross_entropy"``, ``"nll"``, ``"bce"`` (with logits), ``"mse"``, ``"l1"``, or any
        callable ``loss(output, target) -> scalar tensor``. The named class losses take
        (N, C) outputs and per-token or per-pixel ones, (N, C, ...) or (N, T, C), with
        targets (N, ...); targets of -100 are ignored, as in PyTorch. ``"model"``: the model
        computes its own loss, as the gate and sweeper's loop then do too: a LightningModule's
        ``training_step((x, y), batch_idx)`` (the loss it returns), or a Hugging Face model
        called with ``labels=y`` (its output's ``loss``); the output checks judge its logits
        with the kind's loss (cross-entropy, BCE or MSE).
    kind: ``"multiclass"`` (class indices: per sample, token or pixel), ``"binary"`` (0/1),
        ``"multilabel"`` (several independent 0/1 labels per sample), ``"regression"``, or
        ``"custom"`` (no classes: the loss is all sweeper judges, e.g. a VAE or a contrastive
        model; the targets are passed to it as given).
    num_classes: number of classes (multiclass; 2 for binary).
    output: how to read the model's output when it is not the tensor the loss takes: an
        attribute or key name (``"logits"``), or ``fn(output) -> tensor``. By default a
        tensor is used as is and an object or dict with ``logits`` (a Hugging Face model's
        output) gives its logits; tuples and other dicts go to the loss as they are.

    Hooks, all optional (without them sweeper's own choices are used):
    optimizer: ``fn(model, params) -> torch.optim.Optimizer`` (parameter groups allowed).
    scheduler: ``fn(optimizer, params, steps_per_epoch, epochs) -> LR scheduler``, stepped
        once per optimizer step.
    metrics: ``fn(outputs, targets) -> dict[str, float]`` over the whole validation split,
        every epoch; any key it returns can be the definition's ``objective.metric``.
    collate_fn, loader: the DataLoader's ``collate_fn`` and other options (``num_workers``,
        ``pin_memory``, ...) for Dataset data.
    init_modules: the only submodules a searched init scheme may touch (names such as
        ``["head"]``, or ``fn(model) -> modules``); pretrained parts stay as loaded.
    fit: ``fn(params, trial)``, the user's own training loop as the whole trial; it calls
        ``trial.report(metrics)`` once per epoch and ``trial.watch(model, optimizer)``.
    """

    build_model: Callable[[dict[str, Any]], Any] | None = None
    train: Any = None
    val: Any = None
    loss: str | Callable[..., Any] = "cross_entropy"
    kind: str = "multiclass"
    num_classes: int | None = None
    optimizer: Callable[..., Any] | None = None
    scheduler: Callable[..., Any] | None = None
    metrics: Callable[..., Any] | None = None
    collate_fn: Callable[..., Any] | None = None
    loader: dict[str, Any] | None = None
    init_modules: Any = None
    fit: Callable[..., Any] | None = None
    output: str | Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.fit is None:
            if not callable(self.build_model):
                problems.append("build_model must be a callable taking the params dict")
            for name in ("train", "val"):
                if getattr(self, name) is None:
                    problems.append(f"{name} data is missing (or give fit=... to train yourself)")
        elif self.build_model is not None and not callable(self.build_model):
            problems.append("build_model must be a callable taking the params dict")
        for hook in _HOOKS:
            value = getattr(self, hook)
            if value is not None and not callable(value):
                problems.append(f"{hook} must be a callable, got {type(value).__name__}")
        if self.kind not in KINDS:
            problems.append(f"kind must be one of {list(KINDS)}, got {self.kind!r}")
        if isinstance(self.loss, str):
            if self.loss not in LOSSES:
                problems.append(
                    f"loss must be one of {list(LOSSES)} or a callable, got {self.loss!r}"
                )
            elif self.kind in KINDS and self.kind not in _LOSS_KINDS.get(self.loss, (self.kind,)):
                want = " or ".join(repr(k) for k in _LOSS_KINDS[self.loss])
                problems.append(f"loss {self.loss!r} is for kind={want}, not {self.kind!r}")
        elif not callable(self.loss):
            problems.append("loss must be a name or a callable (output, target) -> tensor")
        if self.kind == "binary" and self.num_classes is None:
            self.num_classes = 2
        fit_only = self.fit is not None and (self.build_model is None or self.train is None)
        if (
            self.kind == "multiclass"
            and not fit_only
            and (self.num_classes is None or self.num_classes < 2)
        ):
            problems.append(
                f"num_classes must be >= 2 for kind='multiclass', got {self.num_classes}"
            )
        if self.output is not None and not (callable(self.output) or isinstance(self.output, str)):
            problems.append("output must be an attribute/key name or fn(model_output) -> tensor")
        if self.loader is not None:
            if not isinstance(self.loader, dict):
                problems.append("loader must be a dict of DataLoader options")
            else:
                own = [k for k in self.loader if k in _OWN_LOADER_OPTIONS]
                if own:
                    problems.append(
                        f"loader options {own} are set by sweeper (batch_size comes from the "
                        "search, training data is shuffled; give collate_fn=... on the Task)"
                    )
        if self.init_modules is not None and not (
            callable(self.init_modules)
            or (
                isinstance(self.init_modules, (list, tuple))
                and all(isinstance(n, str) for n in self.init_modules)
            )
        ):
            problems.append("init_modules must be a list of submodule names or fn(model)")
        for name in ("train", "val"):
            if getattr(self, name) is not None:
                problems.extend(_check_data(name, getattr(self, name)))
        if problems:
            raise TaskError("invalid sweeper.Task: " + "; ".join(problems))

    def metric_problem(self, metric: str) -> str | None:
        """Why this task cannot report `metric` (the definition's objective), or None. A
        `fit` or a metrics hook may report anything: only sweeper's own loop is known."""
        if self.fit is not None or self.metrics is not None:
            return None
        reported = ["val_loss", "train_loss"]
        if self.kind in ("multiclass", "binary", "multilabel"):
            reported.insert(0, "val_accuracy")
        if metric in reported:
            return None
        return (
            f"objective.metric {metric!r} is never reported by this task: sweeper's loop "
            f"reports {', '.join(reported)} for kind={self.kind!r}; pick one of those, or "
            f"give the task a metrics hook that returns {metric!r}"
        )

    @property
    def has_data(self) -> bool:
        """Whether sweeper itself can feed the model (the gate needs this)."""
        return self.build_model is not None and self.train is not None and self.val is not None


def _rows(x: Any) -> int | None:
    """Rows of an input: a tensor/array, or a tuple/dict of them with equal first dimensions."""
    if hasattr(x, "shape"):
        return len(x)
    parts = list(x.values()) if isinstance(x, dict) else list(x) if isinstance(x, tuple) else []
    if not parts or not all(hasattr(p, "shape") for p in parts):
        return None
    sizes = {len(p) for p in parts}
    return sizes.pop() if len(sizes) == 1 else -1


def _check_data(name: str, data: Any) -> list[str]:
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            return [f"{name} must be an (X, y) pair, got {len(data)} items"]
        x, y = data
        n = _rows(x)
        if n is None or not hasattr(y, "shape"):
            return [
                f"{name} (X, y): X must be a tensor/array or a tuple/dict of them, y a tensor/array"
            ]
        if n == -1:
            return [f"{name}: the tensors in X have different numbers of rows"]
        if n != len(y):
            return [f"{name}: X has {n} rows but y has {len(y)}"]
        if n == 0:
            return [f"{name} is empty"]
        return []
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        return [] if len(data) > 0 else [f"{name} dataset is empty"]
    return [f"{name} must be an (X, y) pair or a torch Dataset, got {type(data).__name__}"]
