"""scikit-learn's digits (1,797 8x8 images, 10 classes) as sweeper tasks.

The split is stratified and fixed (seed 0); inputs are standardized with statistics of the
training split only, so nothing about the validation rows leaks into training.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from sweeper.task import Task


def digits_split(
    val_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardized (X_train, X_val, y_train, y_val) as float32 / int64 numpy arrays."""
    x, y = load_digits(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(
        x.astype(np.float32),
        y.astype(np.int64),
        test_size=val_fraction,
        random_state=seed,
        stratify=y,
    )
    mean = x_tr.mean(axis=0)
    std = x_tr.std(axis=0)
    std[std == 0] = 1.0  # digits has always-blank corner pixels
    return (x_tr - mean) / std, (x_va - mean) / std, y_tr, y_va


class MLP(nn.Module):
    """A ReLU MLP with dropout on the 64 digit pixels, ten classes."""

    def __init__(self, hidden: int, dropout: float, depth: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = 64
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        layers.append(nn.Linear(width, 10))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits for a batch of 64-pixel rows."""
        return self.net(x)


class CNN(nn.Module):
    """A small BatchNorm CNN on the 8x8 digit images, ten classes."""

    def __init__(self, channels: int, dropout: float) -> None:
        super().__init__()
        c = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1),
            nn.BatchNorm2d(c),
            nn.ReLU(),
            nn.Conv2d(c, 2 * c, 3, padding=1),
            nn.BatchNorm2d(2 * c),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(2 * c * 16, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits for a batch of (1, 8, 8) images."""
        return self.head(self.features(x.view(-1, 1, 8, 8)))


def _digits_task(build: Any) -> Task:
    x_tr, x_va, y_tr, y_va = digits_split()
    return Task(
        build_model=build,
        train=(x_tr, y_tr),
        val=(x_va, y_va),
        loss="cross_entropy",
        kind="multiclass",
        num_classes=10,
    )


def mlp_task(depth: int = 2) -> Task:
    """MLP whose width comes from the `hidden` param (128 when not searched)."""
    return _digits_task(lambda p: MLP(int(p.get("hidden", 128)), float(p["dropout"]), depth))


def cnn_task() -> Task:
    """CNN whose width comes from the `channels` param (16 when not searched)."""
    return _digits_task(lambda p: CNN(int(p.get("channels", 16)), float(p["dropout"])))


def few_rows_task(rows: int = 50) -> Task:
    """The MLP on the first `rows` rows of the training split (validation stays whole): a wide
    net without dropout learns them by heart and generalizes poorly (high variance)."""
    x_tr, x_va, y_tr, y_va = digits_split()
    return Task(
        build_model=lambda p: MLP(int(p.get("hidden", 512)), float(p["dropout"])),
        train=(x_tr[:rows], y_tr[:rows]),
        val=(x_va, y_va),
        loss="cross_entropy",
        kind="multiclass",
        num_classes=10,
    )


# three of the 64 pixels, among the most informative ones (of the middle columns)
THREE_PIXELS = (21, 36, 43)


def three_pixels_task() -> Task:
    """A linear model on three of the 64 pixels: it cannot fit even its own training split
    (high bias)."""
    x_tr, x_va, y_tr, y_va = digits_split()
    cols = list(THREE_PIXELS)
    return Task(
        build_model=lambda p: nn.Sequential(nn.Dropout(float(p["dropout"])), nn.Linear(3, 10)),
        train=(x_tr[:, cols], y_tr),
        val=(x_va[:, cols], y_va),
        loss="cross_entropy",
        kind="multiclass",
        num_classes=10,
    )
