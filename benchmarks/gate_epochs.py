"""14. The gate in the user's own epochs: three real-client kinds, each a Task whose `fit` is the
user's loop over its whole training split, as its project trains it, and the study gate on the
same model and data. The gate's cost reads in epochs of that loop (the unit a user pays in),
probe by probe.

- LM: pytorch/examples' word_language_model (2-layer LSTM 200/200, tied weights, bptt 35,
  batch 20, SGD lr 20, clip 0.25) on ~100k tokens of real English (the standard library's
  docstrings, word level).
- ResNet: kuangliu/pytorch-cifar's BasicBlock ResNet with BatchNorm (SGD momentum 0.9,
  weight decay 5e-4, batch 128) on 32x32 three-channel images (digits, upsampled, each also
  shifted: 8.6k training images).
- nanoGPT-style: karpathy's decoder layout (token + position embeddings, pre-LN blocks,
  causal scaled-dot-product attention, GELU MLP, tied head; AdamW lr 1e-3, batch 32,
  block 64) at character level on the same text.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sweeper import Task
from sweeper.probes import run_gate

# -- data -----------------------------------------------------------------------------------


def _text() -> str:
    from tests.probes_tests.corpus import text_tokens

    words, _ = text_tokens()
    return " ".join(words)


def _word_windows(length: int, tokens: int) -> tuple[torch.Tensor, ...]:
    from tests.probes_tests.corpus import text_tokens

    words, _ = text_tokens()
    words = words[:tokens]
    vocab: dict[str, int] = {}
    for w in words:
        vocab.setdefault(w, len(vocab))
    ids = torch.tensor([vocab[w] for w in words])
    return (*_split_windows(ids, length), torch.tensor(len(vocab)))


def _split_windows(ids: torch.Tensor, length: int) -> tuple[torch.Tensor, ...]:
    cut = int(0.9 * len(ids))

    def windows(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = (len(s) - 1) // length
        return s[: n * length].view(n, length), s[1 : n * length + 1].view(n, length)

    return (*windows(ids[:cut]), *windows(ids[cut:]))


def _epoch_loop(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    batch: int,
    clip: float | None = None,
) -> float:
    """One pass over the training split, shuffled, as the projects' train loops do it."""
    model.train()
    order = torch.randperm(len(x))
    total = 0.0
    for i in range(0, len(x), batch):
        idx = order[i : i + batch]
        out = model(x[idx])
        loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y[idx].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        total += loss.item()
    return total


def _own_fit(
    build: Any, make_opt: Any, x: Any, y: Any, batch: int, clip: float | None = None
) -> Any:
    """The user's fit: their model, their optimizer, their loop, one epoch per report."""

    def fit(params: dict[str, Any], trial: Any) -> None:
        model = build(params)
        opt = make_opt(model, params)
        trial.watch(model, opt)
        for _ in range(trial.epochs):
            trial.report({"train_loss": _epoch_loop(model, opt, x, y, batch, clip)})

    return fit


# -- the LM ---------------------------------------------------------------------------------


class RNNModel(nn.Module):
    """word_language_model's RNNModel (batch first), tied weights."""

    def __init__(self, ntoken: int, ninp: int = 200, nhid: int = 200, dropout: float = 0.2):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, 2, dropout=dropout, batch_first=True)
        self.decoder = nn.Linear(nhid, ntoken)
        self.decoder.weight = self.encoder.weight
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.drop(self.encoder(ids)))
        return self.decoder(self.drop(out))


def lm_client(small: bool = False) -> tuple[Task, dict[str, Any], int]:
    x_tr, y_tr, x_va, y_va, v = _word_windows(35, 20_000 if small else 100_000)
    ntoken = int(v)

    def sgd(model: nn.Module, p: dict[str, Any]) -> torch.optim.Optimizer:
        return torch.optim.SGD(model.parameters(), lr=float(p["lr"]))

    def build(p: dict[str, Any]) -> nn.Module:
        return RNNModel(ntoken, dropout=p.get("dropout", 0.2))

    task = Task(
        build_model=build,
        train=(x_tr, y_tr),
        val=(x_va, y_va),
        num_classes=ntoken,
        optimizer=sgd,
        fit=_own_fit(build, sgd, x_tr, y_tr, 20, clip=0.25),
    )
    return task, {"lr": 20.0, "batch_size": 20, "dropout": 0.2, "grad_clip": 0.25}, 20


# -- the ResNet -----------------------------------------------------------------------------


def resnet_client(small: bool = False) -> tuple[Task, dict[str, Any], int]:
    from tests.probes_tests.corpus import ResNet, images

    x_tr, x_va, y_tr, y_va = (torch.as_tensor(a) for a in images(size=32))
    # a CIFAR-sized epoch: each training image also shifted by up to 2 pixels (6 copies)
    shifts = [(0, 0)] if small else [(0, 0), (2, 0), (-2, 0), (0, 2), (0, -2), (2, 2)]
    x_tr = torch.cat([x_tr.roll(s, dims=(2, 3)) for s in shifts])
    y_tr = y_tr.repeat(len(shifts))

    def sgd(model: nn.Module, p: dict[str, Any]) -> torch.optim.Optimizer:
        return torch.optim.SGD(
            model.parameters(), lr=float(p["lr"]), momentum=0.9, weight_decay=5e-4
        )

    def build(p: dict[str, Any]) -> nn.Module:
        return ResNet(blocks=(2, 2, 2, 2), width=16)

    task = Task(
        build_model=build,
        train=(x_tr, y_tr),
        val=(x_va, y_va),
        num_classes=10,
        optimizer=sgd,
        fit=_own_fit(build, sgd, x_tr, y_tr, 128),
    )
    return task, {"lr": 0.1, "batch_size": 128, "dropout": 0.0}, 128


# -- the nanoGPT-style decoder --------------------------------------------------------------


class Block(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.heads, self.dropout = heads, dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        p = self.dropout if self.training else 0.0
        att = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        x = x + self.c_proj(att.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab: int, block: int = 64, d: int = 128, layers: int = 4) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(block, d)
        self.h = nn.ModuleList(Block(d, 4, 0.0) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.wte.weight = self.lm_head.weight
        for name, p in self.named_parameters():
            if p.ndim >= 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith("c_proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def nanogpt_client(small: bool = False) -> tuple[Task, dict[str, Any], int]:
    text = _text()[: 60_000 if small else 300_000]
    chars = sorted(set(text))
    table = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([table[c] for c in text])
    x_tr, y_tr, x_va, y_va = _split_windows(ids, 64)

    def adamw(model: nn.Module, p: dict[str, Any]) -> torch.optim.Optimizer:
        return torch.optim.AdamW(model.parameters(), lr=float(p["lr"]), betas=(0.9, 0.99))

    def build(p: dict[str, Any]) -> nn.Module:
        return GPT(len(chars))

    task = Task(
        build_model=build,
        train=(x_tr, y_tr),
        val=(x_va, y_va),
        num_classes=len(chars),
        optimizer=adamw,
        fit=_own_fit(build, adamw, x_tr, y_tr, 32),
    )
    return task, {"lr": 1e-3, "batch_size": 32, "dropout": 0.0}, 32


CLIENTS = {"LM": lm_client, "ResNet": resnet_client, "nanoGPT-style": nanogpt_client}


def _epoch_seconds(task: Task, params: dict[str, Any], batch: int) -> float:
    """One epoch of the user's own loop, after a warm-up of a few steps."""
    torch.manual_seed(0)
    model = task.build_model(params)  # type: ignore[misc]
    opt = task.optimizer(model, params)  # type: ignore[misc]
    x, y = (torch.as_tensor(a) for a in task.train)  # type: ignore[union-attr]
    _epoch_loop(model, opt, x[: 3 * batch], y[: 3 * batch], batch)
    t = time.perf_counter()
    _epoch_loop(model, opt, x, y, batch, clip=0.25 if isinstance(model, RNNModel) else None)
    return time.perf_counter() - t


def run(quick: bool) -> dict[str, Any]:
    """Per client: one epoch of the user's loop, then the gate on the same model and data (the
    user's params), its seconds in those epochs, and its four slowest probes. Quick: the
    nanoGPT-style client on a fifth of its text, a smoke test."""
    rows = []
    for name, make in CLIENTS.items():
        if quick and name != "nanoGPT-style":
            continue
        task, params, batch = make(small=quick)
        epoch = _epoch_seconds(task, params, batch)
        report = run_gate(task, params=params)
        probes = sorted(report.findings, key=lambda f: -(f.seconds or 0.0))
        rows.append(
            {
                "client": name,
                "train rows": len(task.train[0]),  # type: ignore[index]
                "epoch_s": round(epoch, 2),
                "gate_s": round(report.seconds, 2),
                "gate_in_epochs": round(report.seconds / epoch, 2),
                "verdict": report.verdict,
                "slowest probes (s)": ", ".join(f"{f.probe} {f.seconds:.1f}" for f in probes[:4]),
            }
        )
    return {"rows": rows}
