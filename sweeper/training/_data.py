"""Training data on the trial's device, batched by indexing (tensors) or a DataLoader (Datasets)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset


def target_dtype(kind: str) -> torch.dtype:
    return torch.long if kind == "multiclass" else torch.float32


def as_tensors(data: Any, kind: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """An (X, y) pair as float inputs and kind-typed targets; None for a Dataset."""
    if not isinstance(data, (tuple, list)):
        return None
    x, y = (torch.as_tensor(v) for v in data)
    if not x.is_floating_point():
        x = x.float()
    elif x.dtype == torch.float64:
        x = x.float()
    return x, y.to(target_dtype(kind))


class Batches:
    """Iterates (x, y) batches already on `device`."""

    def __init__(self, data: Any, kind: str, device: torch.device) -> None:
        self.kind = kind
        self.device = device
        tensors = as_tensors(data, kind)
        self.dataset: Dataset[Any] | None = None
        if tensors is None:
            self.dataset = data
            self.x = self.y = None
        else:
            self.x, self.y = (t.to(device) for t in tensors)

    def __len__(self) -> int:
        return len(self.x) if self.x is not None else len(self.dataset)  # type: ignore[arg-type]

    def epoch(
        self, batch_size: int, shuffle: bool, generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.x is not None and self.y is not None:
            n = len(self.x)
            if shuffle:
                order = torch.randperm(n, generator=generator).to(self.device)
                for i in range(0, n, batch_size):
                    idx = order[i : i + batch_size]
                    yield self.x[idx], self.y[idx]
            else:
                for i in range(0, n, batch_size):
                    yield self.x[i : i + batch_size], self.y[i : i + batch_size]
            return
        assert self.dataset is not None
        loader = DataLoader(
            self.dataset, batch_size=batch_size, shuffle=shuffle, generator=generator
        )
        dtype = target_dtype(self.kind)
        for xb, yb in loader:
            yield xb.to(self.device).float(), yb.to(self.device, dtype)

    def head(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first n rows as tensors on the device (for probes)."""
        if self.x is not None and self.y is not None:
            return self.x[:n], self.y[:n]
        return next(iter(self.epoch(n, shuffle=False)))

    def take(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.x is not None and self.y is not None:
            return self.x[idx.to(self.device)], self.y[idx.to(self.device)]
        items = [self.dataset[int(i)] for i in idx]  # type: ignore[index]
        xs = torch.stack([torch.as_tensor(a) for a, _ in items]).to(self.device).float()
        ys = torch.as_tensor([b for _, b in items]).to(self.device, target_dtype(self.kind))
        return xs, ys
