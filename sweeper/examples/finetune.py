"""Fine-tuning: a backbone pre-trained once, then a new head tuned on another task.

The backbone (an MLP) is pre-trained on digits 0-4 and cached to disk; the study fine-tunes
it with a new head on digits 5-9. The task says that a searched init scheme may touch only
the head (``init_modules=["head"]``), so the pre-trained weights reach every trial intact,
and its optimizer gives the backbone a smaller learning rate (``backbone_lr_scale``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sweeper.examples.digits import digits_split
from sweeper.task import Task

HIDDEN = 64


def default_cache() -> Path:
    """Where the example's pretrained backbone is cached."""
    return Path(os.environ.get("SWEEPER_CACHE", Path.home() / ".cache" / "sweeper"))


def make_backbone() -> nn.Sequential:
    """The example's backbone, pretrained once on the digits' upper classes and cached."""
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, HIDDEN), nn.ReLU())


def pretrained_backbone(cache: Path, epochs: int = 15) -> Path:
    """Pre-train the backbone on digits 0-4 once; later calls find it in `cache`. The file
    is written whole or not at all (several runners may start at once)."""
    path = Path(cache) / "digits04_backbone.pt"
    if path.exists():
        return path
    x_tr, _, y_tr, _ = digits_split()
    keep = y_tr < 5
    x = torch.as_tensor(x_tr[keep])
    y = torch.as_tensor(y_tr[keep])
    torch.manual_seed(0)
    backbone, head = make_backbone(), nn.Linear(HIDDEN, 5)
    model = nn.Sequential(backbone, head)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    torch.save(backbone.state_dict(), tmp)
    os.replace(tmp, path)
    return path


class FineTune(nn.Module):
    """A pretrained backbone with a new head, frozen or fine-tuned."""

    def __init__(self, backbone: nn.Module, dropout: float, classes: int = 5) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(HIDDEN, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits from the backbone's features."""
        return self.head(self.backbone(x))


def finetune_task(cache: str | None = None) -> Task:
    """Digits 5-9 (labels 0-4) on the backbone pre-trained on digits 0-4."""
    weights = pretrained_backbone(Path(cache) if cache else default_cache())
    x_tr, x_va, y_tr, y_va = digits_split()
    tr, va = y_tr >= 5, y_va >= 5

    def build(p: dict[str, Any]) -> nn.Module:
        backbone = make_backbone()
        backbone.load_state_dict(torch.load(weights, weights_only=True))
        return FineTune(backbone, float(p["dropout"]))

    def optimizer(model: nn.Module, p: dict[str, Any]) -> torch.optim.Optimizer:
        lr = float(p["lr"])
        scale = float(p.get("backbone_lr_scale", 0.1))
        return torch.optim.Adam(
            [
                {"params": model.get_submodule("backbone").parameters(), "lr": lr * scale},
                {"params": model.get_submodule("head").parameters(), "lr": lr},
            ]
        )

    return Task(
        build_model=build,
        train=(x_tr[tr], (y_tr[tr] - 5).astype(np.int64)),
        val=(x_va[va], (y_va[va] - 5).astype(np.int64)),
        loss="cross_entropy",
        kind="multiclass",
        num_classes=5,
        optimizer=optimizer,
        init_modules=["head"],
    )
