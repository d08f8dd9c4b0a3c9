"""Training data on the trial's device: tensors batched by indexing, Datasets by a DataLoader.

An input ``x`` may be one tensor of any dtype (integer token ids stay integers), a tuple of
tensors (the model is called as ``model(*x)``) or a dict of tensors (``model(**x)``). Every
tensor in it has the batch as its first dimension. The helpers here treat all three alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

Inputs = Any  # a tensor, a tuple of tensors or a dict of name -> tensor


def as_target(y: Any, kind: str) -> torch.Tensor:
    """Targets as the loss wants them: class indices as int64 (multiclass), 0/1 floats
    (binary, multilabel), float32 values (regression); a custom task's as given, float64 made
    float32."""
    t = torch.as_tensor(y)
    if kind == "multiclass":
        # fractional "class ids" (labels scaled along with the inputs) are kept as they are
        # for the gate's labels_in_range to name, never truncated to class 0 in silence
        if t.is_floating_point() and not bool(torch.all(t == t.round())):
            return t
        return t.long()
    if kind == "custom":
        return t.float() if t.dtype == torch.float64 else t
    return t.float()


def tree_map(fn: Callable[[torch.Tensor], torch.Tensor], x: Inputs) -> Inputs:
    """`fn` applied to every tensor of an input, keeping its structure."""
    if isinstance(x, dict):
        return {k: tree_map(fn, v) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return tuple(tree_map(fn, v) for v in x)
    return fn(x)


def leaves(x: Inputs) -> list[tuple[str, torch.Tensor]]:
    """Every tensor of an input with its name (``""`` for a lone tensor, ``"0"``, ``"ids"``)."""
    if isinstance(x, dict):
        return [(str(k), v) for k, v in x.items()]
    if isinstance(x, (tuple, list)):
        return [(str(i), v) for i, v in enumerate(x)]
    return [("", x)]


def rows(x: Inputs) -> int:
    """The batch size of an input."""
    return len(leaves(x)[0][1])


def forward(model: torch.nn.Module, x: Inputs) -> Any:
    """Call the model the way the input's shape says: model(x), model(*x) or model(**x)."""
    if isinstance(x, dict):
        return model(**x)
    if isinstance(x, (tuple, list)):
        return model(*x)
    return model(x)


def is_plain_float(x: Inputs) -> bool:
    """One floating-point tensor (what gradcheck and input gradients need)."""
    return isinstance(x, torch.Tensor) and x.is_floating_point()


def _as_input(v: Any) -> torch.Tensor:
    t = torch.as_tensor(v)
    return t.float() if t.dtype == torch.float64 else t  # integers and bools stay as they are


def as_inputs(x: Any) -> Inputs:
    """A split's inputs as tensors: a tensor, an array, or a dict/tuple of them."""
    if isinstance(x, dict):
        return {k: _as_input(v) for k, v in x.items()}
    if isinstance(x, (tuple, list)) and not hasattr(x, "shape"):
        return tuple(_as_input(v) for v in x)
    return _as_input(x)


def concat(parts: list[Inputs]) -> Inputs:
    """Batches' inputs joined along the first dimension, keeping their structure."""
    first = parts[0]
    if isinstance(first, dict):
        return {k: torch.cat([p[k] for p in parts]) for k in first}
    if isinstance(first, tuple):
        return tuple(torch.cat([p[i] for p in parts]) for i in range(len(first)))
    return torch.cat(parts)


def _index(x: Inputs, idx: torch.Tensor | slice) -> Inputs:
    return tree_map(lambda t: t[idx], x)


class Batches:
    """Iterates (x, y) batches already on `device`."""

    def __init__(
        self,
        data: Any,
        kind: str,
        device: torch.device,
        collate_fn: Callable[..., Any] | None = None,
        loader: dict[str, Any] | None = None,
    ) -> None:
        self.kind = kind
        self.device = device
        self.collate_fn = collate_fn
        self.loader = dict(loader or {})
        self.dataset: Dataset[Any] | None = None
        self.x: Inputs = None
        self.y: torch.Tensor | None = None
        if isinstance(data, (tuple, list)):
            self.x = tree_map(lambda t: t.to(device), as_inputs(data[0]))
            self.y = as_target(data[1], kind).to(device)
        else:
            self.dataset = data
        self.pin = device.type == "cuda" and self.loader.get("pin_memory", False)

    def __len__(self) -> int:
        return rows(self.x) if self.y is not None else len(self.dataset)  # type: ignore[arg-type]

    def _on_device(self, xb: Any, yb: Any) -> tuple[Inputs, torch.Tensor]:
        xb = tree_map(lambda t: t.to(self.device, non_blocking=self.pin), as_inputs(xb))
        return xb, as_target(yb, self.kind).to(self.device, non_blocking=self.pin)

    def epoch(
        self, batch_size: int, shuffle: bool, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Inputs, torch.Tensor]]:
        """One pass over the split in batches of `batch_size`, shuffled with `generator` when asked,
        on the device."""
        if self.y is not None:
            n = len(self.y)
            if shuffle:
                order = torch.randperm(n, generator=generator).to(self.device)
                for i in range(0, n, batch_size):
                    idx = order[i : i + batch_size]
                    yield _index(self.x, idx), self.y[idx]
            else:
                for i in range(0, n, batch_size):
                    part = slice(i, i + batch_size)
                    yield _index(self.x, part), self.y[part]
            return
        assert self.dataset is not None
        options = {k: v for k, v in self.loader.items() if k not in ("batch_size", "shuffle")}
        loader = DataLoader(
            self.dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            generator=generator,
            collate_fn=self.collate_fn,
            **options,
        )
        for xb, yb in loader:
            yield self._on_device(xb, yb)

    def head(self, n: int) -> tuple[Inputs, torch.Tensor]:
        """The first n rows on the device (for probes)."""
        if self.y is not None:
            return tree_map(lambda t: t[:n], self.x), self.y[:n]
        return self.take(torch.arange(min(n, len(self))))

    def all(self, chunk: int = 4096) -> tuple[Inputs, torch.Tensor]:
        """Every row on the device (for probes that look at a whole split)."""
        if self.y is not None:
            return self.x, self.y
        parts = list(self.epoch(chunk, shuffle=False))
        return concat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def take(self, idx: torch.Tensor) -> tuple[Inputs, torch.Tensor]:
        """The rows at `index`, as one batch on the device."""
        if self.y is not None:
            i = idx.to(self.device)
            return tree_map(lambda t: t[i], self.x), self.y[i]
        assert self.dataset is not None
        items = [self.dataset[int(i)] for i in idx]
        if self.collate_fn is not None:
            xb, yb = self.collate_fn(items)
        else:
            from torch.utils.data import default_collate

            xb, yb = default_collate(items)
        return self._on_device(xb, yb)
