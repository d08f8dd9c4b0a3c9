"""What every probe gets: the task, its data on the device, reference params and settings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from sweeper.probes._settings import Settings
from sweeper.training import Data

# The layers whose weights and activations the probes judge (init gain, dead units, last layer)
LAYERS = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
# Params for a probe run when the user gives none: a safe, ordinary configuration.
REFERENCE_PARAMS: dict[str, Any] = {"lr": 1e-3, "batch_size": 32, "dropout": 0.0, "init": "none"}


@dataclass
class Context:
    task: Any
    data: Data
    params: dict[str, Any]
    device: torch.device
    settings: Settings = field(default_factory=Settings)
    seed: int = 0
    cache: dict[str, Any] = field(default_factory=dict)  # what several probes read, made once

    @property
    def kind(self) -> str:
        return str(self.task.kind)

    @property
    def num_classes(self) -> int:
        return int(self.task.num_classes or 2)

    @property
    def loss_name(self) -> str:
        loss = self.task.loss
        if isinstance(loss, str):
            return loss
        name = type(loss).__name__ if not hasattr(loss, "__name__") else loss.__name__
        known = {
            "CrossEntropyLoss": "cross_entropy",
            "cross_entropy": "cross_entropy",
            "NLLLoss": "nll",
            "nll_loss": "nll",
            "BCEWithLogitsLoss": "bce",
            "BCELoss": "bce_prob",
            "binary_cross_entropy": "bce_prob",
            "binary_cross_entropy_with_logits": "bce",
            "MSELoss": "mse",
            "mse_loss": "mse",
            "L1Loss": "l1",
            "l1_loss": "l1",
        }
        return known.get(name, "custom")

    @property
    def label_smoothing(self) -> float:
        return float(getattr(self.task.loss, "label_smoothing", 0.0) or 0.0)

    def loss_floor(self) -> float:
        """The lowest loss a perfect fit can reach (0, unless labels are smoothed)."""
        eps, c = self.label_smoothing, self.num_classes
        if self.loss_name != "cross_entropy" or eps <= 0:
            return 0.0
        hi = 1 - eps + eps / c
        lo = eps / c
        return -(hi * math.log(hi) + (c - 1) * lo * math.log(lo))
