"""The bug zoo: small tasks on bundled scikit-learn data, each broken in one known way, and
healthy ones that must pass. One function per case; add a case by adding a function and a
line in BROKEN or HEALTHY."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from sweeper import Task
from sweeper.examples.digits import CNN, MLP, digits_split


def _standardize(x_tr: np.ndarray, x_va: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = x_tr.mean(0), x_tr.std(0)
    std[std == 0] = 1
    return ((x_tr - mean) / std).astype(np.float32), ((x_va - mean) / std).astype(np.float32)


def _digits(build: Callable[[dict[str, Any]], nn.Module] | None = None, **kw: Any) -> Task:
    x_tr, x_va, y_tr, y_va = digits_split()
    args: dict[str, Any] = dict(
        build_model=build or (lambda p: MLP(64, p["dropout"])),
        train=(x_tr, y_tr),
        val=(x_va, y_va),
        loss="cross_entropy",
        kind="multiclass",
        num_classes=10,
    )
    args.update(kw)
    return Task(**args)


class ZeroInitMLP(nn.Module):
    """Weights held as plain Parameters (no nn.Linear), so no init scheme reaches them."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(64, 64) * scale)
        self.b1 = nn.Parameter(torch.zeros(64))
        self.w2 = nn.Parameter(torch.randn(64, 10) * scale)
        self.b2 = nn.Parameter(torch.zeros(10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x @ self.w1 + self.b1) @ self.w2 + self.b2


class Detached(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(64, 64), nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2(F.relu(self.l1(x)).detach())


class BatchMixer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(64, 64), nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.l1(x))
        return self.l2(h - h.mean(0, keepdim=True))  # "normalizes" across the batch, also at eval


class EvalDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(64, 64), nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2(F.dropout(F.relu(self.l1(x)), 0.5, training=True))


class ResidualMLP(nn.Module):
    def __init__(self, width: int = 64, blocks: int = 8) -> None:
        super().__init__()
        self.inp = nn.Linear(64, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(width), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width)
            )
            for _ in range(blocks)
        )
        self.out = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


# -- broken ------------------------------------------------------------------------------------
def unnormalized_inputs() -> Task:
    x, y = load_digits(return_X_y=True)
    x = (x * 255 / 16).astype(np.float32)  # raw 0–255 pixels, never standardized
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return _digits(train=(x_tr, y_tr), val=(x_va, y_va))


def zeroed_inputs() -> Task:
    x_tr, x_va, y_tr, y_va = digits_split()
    return _digits(train=(x_tr * 0, y_tr), val=(x_va * 0, y_va))


def misaligned_labels() -> Task:
    x_tr, x_va, y_tr, y_va = digits_split()
    rng = np.random.default_rng(0)
    return _digits(train=(x_tr, rng.permutation(y_tr)), val=(x_va, y_va))


def all_zero_init() -> Task:
    return _digits(build=lambda p: ZeroInitMLP(scale=0.0))


def init_std_too_large() -> Task:
    return _digits(build=lambda p: ZeroInitMLP(scale=10.0))


def softmax_before_cross_entropy() -> Task:
    return _digits(build=lambda p: nn.Sequential(MLP(64, p["dropout"]), nn.Softmax(dim=-1)))


def relu_on_regression_output() -> Task:
    return _diabetes(
        lambda p: nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1), nn.ReLU())
    )


def raw_logits_into_nll() -> Task:
    return _digits(loss="nll")


def frozen_layer() -> Task:
    def build(p: dict[str, Any]) -> nn.Module:
        model = MLP(64, p["dropout"])
        model.net[0].requires_grad_(False)
        return model

    return _digits(build=build)


def detached_layer() -> Task:
    return _digits(build=lambda p: Detached())


def batch_mixing_layer() -> Task:
    return _digits(build=lambda p: BatchMixer())


def nan_in_data() -> Task:
    x_tr, x_va, y_tr, y_va = digits_split()
    x_tr = x_tr.copy()
    x_tr[5, 3] = np.nan
    return _digits(train=(x_tr, y_tr))


def labels_out_of_range() -> Task:
    x_tr, x_va, y_tr, y_va = digits_split()
    return _digits(train=(x_tr, y_tr + 1), val=(x_va, y_va + 1))  # 1..10 with num_classes=10


def train_val_overlap() -> Task:
    x_tr, _, y_tr, _ = digits_split()
    return _digits(val=(x_tr[:360], y_tr[:360]))


def sorted_unshuffled_labels() -> Task:
    x_tr, x_va, y_tr, y_va = digits_split()
    x, y = np.concatenate([x_tr, x_va]), np.concatenate([y_tr, y_va])
    order = np.argsort(y, kind="stable")
    x, y = x[order], y[order]
    cut = int(0.8 * len(y))  # split by position, without shuffling
    return _digits(train=(x[:cut], y[:cut]), val=(x[cut:], y[cut:]))


def dropout_at_eval() -> Task:
    return _digits(build=lambda p: EvalDropout())


# -- healthy -----------------------------------------------------------------------------------
def healthy_mlp() -> Task:
    return _digits()


def healthy_cnn_batchnorm() -> Task:
    return _digits(build=lambda p: CNN(8, p["dropout"]))


def healthy_label_smoothing() -> Task:
    return _digits(loss=nn.CrossEntropyLoss(label_smoothing=0.1))


def healthy_imbalanced_binary_bce() -> Task:
    x, y = load_breast_cancer(return_X_y=True)
    keep = np.concatenate([np.where(y == 1)[0], np.where(y == 0)[0][:60]])  # ~86% positive
    x, y = x[keep], y[keep]
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    x_tr, x_va = _standardize(x_tr, x_va)
    return Task(
        build_model=lambda p: nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 1)),
        train=(x_tr, y_tr.astype(np.float32)),
        val=(x_va, y_va.astype(np.float32)),
        loss="bce",
        kind="binary",
    )


def _diabetes(build: Callable[[dict[str, Any]], nn.Module]) -> Task:
    x, y = load_diabetes(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.25, random_state=0)
    x_tr, x_va = _standardize(x_tr, x_va)
    mu, sd = y_tr.mean(), y_tr.std()
    return Task(
        build_model=build,
        train=(x_tr, ((y_tr - mu) / sd).astype(np.float32)),
        val=(x_va, ((y_va - mu) / sd).astype(np.float32)),
        loss="mse",
        kind="regression",
    )


def healthy_regression_mse() -> Task:
    return _diabetes(lambda p: nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1)))


def healthy_deep_residual() -> Task:
    return _digits(build=lambda p: ResidualMLP())


# case -> the probe that must name its cause
BROKEN: dict[Callable[[], Task], str] = {
    unnormalized_inputs: "data_scale",
    zeroed_inputs: "constant_features",
    misaligned_labels: "short_fit_vs_baseline",
    all_zero_init: "gradient_flow",
    init_std_too_large: "init_loss",
    softmax_before_cross_entropy: "overfit_tiny",
    relu_on_regression_output: "overfit_tiny",
    raw_logits_into_nll: "init_loss",
    frozen_layer: "gradient_flow",
    detached_layer: "gradient_flow",
    batch_mixing_layer: "batch_independence",
    nan_in_data: "data_finite",
    labels_out_of_range: "labels_in_range",
    train_val_overlap: "train_val_overlap",
    sorted_unshuffled_labels: "data_order",
    dropout_at_eval: "eval_determinism",
}
HEALTHY: list[Callable[[], Task]] = [
    healthy_mlp,
    healthy_cnn_batchnorm,
    healthy_label_smoothing,
    healthy_imbalanced_binary_bce,
    healthy_regression_mse,
    healthy_deep_residual,
]
