"""What every probe gets: the task, its data on the device, reference params and settings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from sweeper.training import Data

# Params for a probe run when the user gives none: a safe, ordinary configuration.
REFERENCE_PARAMS: dict[str, Any] = {"lr": 1e-3, "batch_size": 32, "dropout": 0.0, "init": "none"}


@dataclass
class Settings:
    """Thresholds of the probes; the definition's `probes:` section fills them."""

    init_loss_tolerance: float = 0.5
    init_loss_fail_ratio: float = 3.0
    overfit_samples: int = 16
    overfit_steps: int = 200
    overfit_min_accuracy: float = 0.95
    overfit_lr: float = 3e-3
    disabled: tuple[str, ...] = ()

    @classmethod
    def from_spec(cls, spec: Any) -> Settings:
        if spec is None:
            return cls()
        return cls(
            init_loss_tolerance=spec.init_loss_tolerance,
            overfit_samples=spec.overfit_samples,
            overfit_steps=spec.overfit_steps,
            overfit_min_accuracy=spec.overfit_min_accuracy,
            disabled=tuple(spec.disable),
        )


@dataclass
class Context:
    task: Any
    data: Data
    params: dict[str, Any]
    device: torch.device
    settings: Settings = field(default_factory=Settings)
    seed: int = 0

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
