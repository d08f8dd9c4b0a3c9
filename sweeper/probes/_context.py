"""What every probe gets: the task, its data on the device, reference params and settings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from sweeper.probes._settings import Settings
from sweeper.probes._threads import CpuShare
from sweeper.training import Data, build_model, correct, decision_threshold, loss_name

# The layers whose weights and activations the probes judge (init gain, dead units, last layer)
LAYERS = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
# Params for a probe run when the user gives none: a safe, ordinary configuration.
REFERENCE_PARAMS: dict[str, Any] = {"lr": 1e-3, "batch_size": 32, "dropout": 0.0, "init": "none"}


@dataclass
class Context:
    """What every probe gets: the task, its data on the device, the reference params, the settings,
    a seed and a cache of what several probes read."""

    task: Any
    data: Data
    params: dict[str, Any]
    device: torch.device
    settings: Settings = field(default_factory=Settings)
    seed: int = 0
    cache: dict[str, Any] = field(default_factory=dict)  # what several probes read, made once
    # what other processes use of the CPUs, from the context's making to each training probe
    cpu_share: CpuShare = field(default_factory=CpuShare)

    @property
    def kind(self) -> str:
        """The task's kind: multiclass, binary, multilabel, regression or custom."""
        return str(self.task.kind)

    @property
    def num_classes(self) -> int:
        """The task's classes (2 for binary, 0 where there are none)."""
        return int(self.task.num_classes or 2)

    @property
    def per_element(self) -> bool:
        """Classes per token or per pixel: class-index targets with more than one per row."""
        if "per_element" not in self.cache:
            _, y = self.data.train.head(1)
            self.cache["per_element"] = self.kind == "multiclass" and y.ndim > 1
        return bool(self.cache["per_element"])

    def fresh_model(self, seed: int | None = None, **params: Any) -> torch.nn.Module:
        """The task's model for the reference params (dropout off unless given), seeded."""
        torch.manual_seed(self.seed if seed is None else seed)
        return build_model(self.task, {**self.params, "dropout": 0.0, **params}, self.device)

    def probe_batch(self, steps: int, cap: int) -> int:
        """The batch of a training probe of `steps` steps: the reference params' batch (at
        most `cap`), smaller on a large training split so that the probe goes through at
        most `probe_epoch_share` of one epoch's rows, never below 16 rows. The gate's cost
        then reads in the user's epochs, whatever the split's size."""
        wanted = min(int(self.params.get("batch_size", 32)), cap)
        budget = int(self.settings.probe_epoch_share * len(self.data.train) / max(steps, 1))
        return max(1, min(wanted, max(budget, 16)))

    def fixed_parameters(self) -> set[str]:
        """Parameters that come out the same from two builds with different seeds: loaded
        from a checkpoint, or set by the model's code (zeros, a prior, a constant). What
        the user chose, not what a random init drew."""
        if "fixed" not in self.cache:
            a = dict(self.fresh_model(seed=self.seed).named_parameters())
            b = dict(self.fresh_model(seed=self.seed + 1).named_parameters())
            fixed = {
                n for n, p in a.items() if n in b and bool(torch.equal(p.detach(), b[n].detach()))
            }
            self.cache["fixed"] = fixed
            self.cache["loaded"] = [
                n for n in fixed if a[n].ndim >= 2 and float(a[n].detach().float().std()) > 0
            ]
        return set(self.cache["fixed"])

    def loaded_weights(self) -> list[str]:
        """Weight matrices that every build gives the same varied values: loaded from a
        checkpoint (a pretrained backbone), not drawn by a random init nor set to a constant."""
        self.fixed_parameters()  # both come from the same two builds
        return list(self.cache["loaded"])

    @property
    def loss_name(self) -> str:
        """The task's named loss, or 'custom' for its own callable."""
        return loss_name(self.task.loss, self.task.kind)

    def accuracy(self, out: Any, y: torch.Tensor) -> float:
        """Share of right predictions (per sample, token, pixel or label; nan when the output
        is not one tensor or nothing is counted)."""
        if not isinstance(out, torch.Tensor):
            return float("nan")
        right, counted = correct(out, y, decision_threshold(self.task.loss))
        return float(right) / float(counted) if int(counted) else float("nan")

    @property
    def label_smoothing(self) -> float:
        """The label smoothing of the task's cross-entropy (0 without)."""
        return float(getattr(self.task.loss, "label_smoothing", 0.0) or 0.0)

    def loss_floor(self) -> float:
        """The lowest loss a perfect fit can reach (0, unless labels are smoothed)."""
        eps, c = self.label_smoothing, self.num_classes
        if self.loss_name != "cross_entropy" or eps <= 0:
            return 0.0
        hi = 1 - eps + eps / c
        lo = eps / c
        return -(hi * math.log(hi) + (c - 1) * lo * math.log(lo))
