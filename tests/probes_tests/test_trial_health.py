"""Trial health: bugs that show up during training, in a user's own loop that calls only
`trial.watch` and `trial.report` (no `trial.step`) and in sweeper's loop, are stopped with the
check that names them; healthy loops (accumulation, a frozen layer, warmup from 0) are not."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sweeper
from sweeper.errors import TrialStopped
from sweeper.examples.digits import CNN, MLP, digits_split
from sweeper.probes import TrialMonitor
from sweeper.training import Data, builtin_fit

X_TR, X_VA, Y_TR, Y_VA = (torch.as_tensor(a) for a in digits_split())
EPOCHS = 4


def _mlp(dropout: float = 0.2) -> nn.Module:
    torch.manual_seed(0)
    return MLP(64, dropout)


def own_loop(
    build: Callable[[], nn.Module] = _mlp,
    optimizer: Callable[[nn.Module], torch.optim.Optimizer] | None = None,
    schedule: Callable[[torch.optim.Optimizer], Any] | None = None,
    *,
    train_mode: bool = True,
    zero_grad: bool = True,
    accumulate: int = 1,
    rebuild: bool = False,
    loss_fn: Callable[..., torch.Tensor] = F.cross_entropy,
    y_tr: torch.Tensor = Y_TR,
    y_va: torch.Tensor = Y_VA,
    x_tr: torch.Tensor = X_TR,
    x_va: torch.Tensor = X_VA,
) -> Callable[[dict[str, Any], sweeper.Trial], None]:
    """A user's fit, written the way main.py-style loops are; each flag is one bug."""

    def fit(params: dict[str, Any], trial: sweeper.Trial) -> None:
        model = build()
        opt = optimizer(model) if optimizer else torch.optim.Adam(model.parameters(), lr=1e-3)
        sched = schedule(opt) if schedule else None
        if rebuild:
            model = build()  # the bug: the optimizer still holds the first model's parameters
        trial.watch(model, opt)
        gen = torch.Generator().manual_seed(0)
        for _ in range(trial.epochs):
            if train_mode:
                model.train()
            for i, idx in enumerate(torch.randperm(len(x_tr), generator=gen).split(32)):
                loss = loss_fn(model(x_tr[idx]), y_tr[idx])
                (loss / accumulate).backward()
                if (i + 1) % accumulate == 0:
                    opt.step()
                    if sched is not None:
                        sched.step()
                    if zero_grad:
                        opt.zero_grad()
            model.eval()
            with torch.no_grad():
                out = model(x_va)
                trial.report({"val_loss": float(loss_fn(out, y_va))})

    return fit


class NaNAfter(nn.Module):
    """An MLP whose middle layer starts giving inf after 60 calls (an overflow mid-training)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inp, self.mid, self.out = nn.Linear(64, 64), nn.Linear(64, 64), nn.Linear(64, 10)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        h = self.mid(F.relu(self.inp(x)))
        if self.calls > 60:
            h = h * torch.tensor(float("inf"))
        return self.out(F.relu(h))


def _groups(model: nn.Module) -> torch.optim.Optimizer:
    body = [p for n, p in model.named_parameters() if not n.startswith("net.6")]
    head = list(model.net[6].parameters())  # type: ignore[index]
    return torch.optim.SGD([{"params": body, "lr": 0.01}, {"params": head, "lr": 80.0}])


def _parity() -> dict[str, torch.Tensor]:
    return {"y_tr": (Y_TR % 2).float(), "y_va": (Y_VA % 2).float()}


class GRUParity(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.gru = nn.GRU(8, 32, batch_first=True)
        self.head = nn.Linear(32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x.view(len(x), 8, 8))
        return self.head(out[:, -1]).squeeze(-1)


BROKEN: dict[str, tuple[Callable[..., None], tuple[str, ...]]] = {
    "gru_sgd_lr_50": (
        own_loop(
            GRUParity,
            lambda m: torch.optim.SGD(m.parameters(), lr=50.0),
            loss_fn=F.binary_cross_entropy_with_logits,
            **_parity(),
        ),
        ("update_ratio", "loss_growth", "nonfinite_grad", "nonfinite_loss"),
    ),
    "eval_mode_left_on": (own_loop(train_mode=False), ("eval_mode_training",)),
    "zero_grad_forgotten": (own_loop(zero_grad=False), ("grad_not_zeroed",)),
    "stale_optimizer": (own_loop(rebuild=True), ("stale_optimizer",)),
    "schedule_reaches_zero": (
        own_loop(
            schedule=lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda s: max(0.0, 1 - s / 20))
        ),
        ("lr_schedule",),
    ),
    "nan_in_one_layer_mid_training": (own_loop(NaNAfter), ("nonfinite_grad",)),
    "too_high_lr_in_one_group": (own_loop(optimizer=_groups), ("update_ratio", "loss_growth")),
}
HEALTHY: dict[str, Callable[..., None]] = {
    "plain": own_loop(),
    "gradient_accumulation": own_loop(accumulate=4),
    "frozen_first_layer": own_loop(
        optimizer=lambda m: torch.optim.Adam(
            [p for p in m.net[0].requires_grad_(False) and m.parameters() if p.requires_grad],
            lr=1e-3,
        )
    ),
    "warmup_from_zero": own_loop(
        schedule=lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda s: min(1.0, s / 30))
    ),
    "batchnorm_cnn": own_loop(
        lambda: CNN(8, 0.1), x_tr=X_TR.view(-1, 1, 8, 8), x_va=X_VA.view(-1, 1, 8, 8)
    ),
}


def _run(fit: Callable[..., None]) -> TrialMonitor:
    monitor = TrialMonitor(
        first_forward=True, expected_loss=math.log(10), epochs=EPOCHS, own_loop=True
    )
    trial = sweeper.Trial({"lr": 1e-3}, epochs=EPOCHS, monitor=monitor)
    try:
        fit(trial.params, trial)
    except TrialStopped:
        pass
    finally:
        trial.close()
    return monitor


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_trial_health_bug_in_an_own_loop_is_stopped_by_its_check(name: str) -> None:
    fit, checks = BROKEN[name]
    monitor = _run(fit)
    assert monitor.stopped, f"{name} ran to the end; findings: {monitor.findings}"
    assert monitor.stopped.split(":")[0] in checks, monitor.stopped


@pytest.mark.parametrize("name", sorted(HEALTHY))
def test_trial_health_healthy_own_loop_is_neither_stopped_nor_warned(name: str) -> None:
    monitor = _run(HEALTHY[name])
    assert monitor.stopped is None, monitor.stopped
    assert not [f for f in monitor.findings if f.verdict in ("warn", "fail")], monitor.findings


@pytest.mark.parametrize("lr, stops", [(50.0, True), (3e-3, False)])
def test_trial_health_sweepers_own_loop_stops_divergence_without_being_told_the_loss(
    lr: float, stops: bool
) -> None:
    task = sweeper.Task(
        build_model=lambda p: MLP(64, 0.0), train=(X_TR, Y_TR), val=(X_VA, Y_VA), num_classes=10
    )
    params = {"lr": lr, "batch_size": 32, "dropout": 0.0, "optimizer": "sgd"}
    monitor = TrialMonitor(expected_loss=math.log(10), epochs=3)
    trial = sweeper.Trial(params, epochs=3, monitor=monitor)
    with pytest.raises(TrialStopped) if stops else _nothing():
        builtin_fit(task, Data.of(task, torch.device("cpu")))(params, trial)
    assert bool(monitor.stopped) == stops, monitor.stopped


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_trial_health_default_linear_init_and_batchnorm_do_not_warn_at_the_first_forward() -> None:
    for build, x in (
        (lambda: MLP(64, 0.0), X_TR[:64]),
        (lambda: CNN(8, 0.0), X_TR[:64].view(-1, 1, 8, 8)),
    ):
        monitor = TrialMonitor(first_forward=True)
        model = build()
        monitor.watch(model, torch.optim.Adam(model.parameters()))
        model(x)
        monitor.close()
        assert [f.verdict for f in monitor.findings if f.probe == "trial_activation_std"] == [
            "pass"
        ]


_ = np  # numpy keeps digits_split's arrays
