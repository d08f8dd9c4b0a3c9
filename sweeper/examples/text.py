"""A small Transformer encoder classifying generated token sequences: a real-project shape.

Batches are dicts (``input_ids``, ``attention_mask``) of integer tensors; the task brings its
own optimizer (AdamW, no weight decay on biases and norms), a warmup + cosine schedule, and
macro-F1 as a metric. The definition adds bf16 autocast and gradient clipping.

The data: sequences of 8 to 24 random tokens over a vocabulary of 64 (0 is padding). Tokens
1 to 4 mark the four classes: each sequence holds its class's marker twice and one other
class's marker once, so the label is the marker seen most: a counting task an encoder learns
in a few epochs.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from sweeper.task import Task

VOCAB = 64
CLASSES = 4
MAX_LEN = 24
PAD = 0


def make_sequences(n: int, seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """n padded sequences as {"input_ids", "attention_mask"} and their labels."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(8, MAX_LEN + 1, (n,), generator=g)
    ids = torch.randint(CLASSES + 1, VOCAB, (n, MAX_LEN), generator=g)
    labels = torch.randint(0, CLASSES, (n,), generator=g)
    other = (labels + torch.randint(1, CLASSES, (n,), generator=g)) % CLASSES
    for i in range(n):
        places = torch.randperm(int(lengths[i]), generator=g)[:3]
        ids[i, places[0]] = labels[i] + 1
        ids[i, places[1]] = labels[i] + 1
        ids[i, places[2]] = other[i] + 1
    positions = torch.arange(MAX_LEN)
    mask = (positions[None, :] < lengths[:, None]).long()
    ids = ids * mask  # padding after each sequence's end
    return {"input_ids": ids, "attention_mask": mask}, labels


class Encoder(nn.Module):
    """A small Transformer encoder classifying token sequences."""

    def __init__(self, dim: int, heads: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, dim, padding_idx=PAD)
        self.positions = nn.Embedding(MAX_LEN, dim)
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=2 * dim, dropout=dropout, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, CLASSES)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Class logits for a batch of token ids."""
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        h = self.tokens(input_ids) + self.positions(pos)[None]
        h = self.encoder(h, src_key_padding_mask=attention_mask == 0)
        keep = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        return self.head(self.norm(pooled))


def adamw_without_decay_on_norms(model: nn.Module, params: dict[str, Any]) -> torch.optim.Optimizer:
    """AdamW with two parameter groups: weight decay on matrices only."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    plain = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": float(params.get("weight_decay", 0.01))},
        {"params": plain, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=float(params["lr"]))


def warmup_cosine(
    optimizer: torch.optim.Optimizer, params: dict[str, Any], steps_per_epoch: int, epochs: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warmup over `warmup_steps`, then a cosine decay to zero at the last step."""
    warmup = int(params.get("warmup_steps", 0))
    total = max(1, steps_per_epoch * epochs)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def macro_f1(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Macro-averaged F1 over the classes, and accuracy, from logits over the whole split."""
    pred = outputs.argmax(dim=-1)
    f1s = []
    for c in range(outputs.shape[-1]):
        tp = float(((pred == c) & (targets == c)).sum())
        fp = float(((pred == c) & (targets != c)).sum())
        fn = float(((pred != c) & (targets == c)).sum())
        f1s.append(2 * tp / max(2 * tp + fp + fn, 1.0))
    return {"macro_f1": sum(f1s) / len(f1s)}


def transformer_task(train_rows: int = 1200, val_rows: int = 400) -> Task:
    """dim, heads and layers come from the params (32, 4 and 2 when not searched)."""
    x_tr, y_tr = make_sequences(train_rows, seed=0)
    x_va, y_va = make_sequences(val_rows, seed=1)

    def build(p: dict[str, Any]) -> nn.Module:
        return Encoder(
            int(p.get("dim", 32)), int(p.get("heads", 4)), int(p.get("layers", 2)), p["dropout"]
        )

    return Task(
        build_model=build,
        train=(x_tr, y_tr),
        val=(x_va, y_va),
        loss="cross_entropy",
        kind="multiclass",
        num_classes=CLASSES,
        optimizer=adamw_without_decay_on_norms,
        scheduler=warmup_cosine,
        metrics=macro_f1,
    )
