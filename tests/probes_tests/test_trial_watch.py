"""The per-trial checks on own fit loops that crashed sweeper or misled the user: a float64
model, parameters frozen after `trial.watch`, an optimizer left holding frozen parameters, a
step that applies nothing although the gradients are fine, module names with underscores,
and a policy network whose first forward is one row."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from sweeper.orchestrator._runner import TrialRunner
from sweeper.probes import Settings
from tests.conftest import run_trial

TASK = """
import torch
from torch import nn
import torch.nn.functional as F
from sweeper.task import Task

MODE = {mode!r}
g = torch.Generator().manual_seed(0)
X = torch.randn(512, 8, generator=g)
Y = (X[:, 0] > 0).long()


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self._stem = nn.Linear(8, 32)
        self._head_out = nn.Linear(32, 2)

    def forward(self, x):
        return self._head_out(torch.relu(self._stem(x)))


def task():
    def fit(params, trial):
        model = Net()
        if MODE == "float64":
            model = model.double()
        opt = torch.optim.SGD(model.parameters(), lr=params["lr"])
        trial.watch(model, opt)
        if MODE == "freeze_after_watch":
            for p in model._stem.parameters():
                p.requires_grad_(False)
        if MODE == "frozen_optimizer":
            for p in model._stem.parameters():
                p.requires_grad_(False)
            opt = torch.optim.SGD(model._stem.parameters(), lr=params["lr"])  # frozen ones
            for p in model._stem.parameters():  # then the model is unfrozen the wrong way
                p.requires_grad_(True)
            for p in model._head_out.parameters():
                p.requires_grad_(True)
            model._stem.requires_grad_(False)
            trial.watch(model, opt)
        if MODE == "one_row_first":
            with torch.no_grad():
                model(X[:1])  # act on one observation before any batch
        for epoch in range(trial.epochs):
            for xb, yb in zip(X.split(32), Y.split(32)):
                xb = xb.double() if MODE == "float64" else xb
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                if MODE == "lr_below_precision":
                    for group in opt.param_groups:
                        group["lr"] = 1e-30  # below float resolution: the step changes nothing
                trial.step(loss)
                opt.step()
            with torch.no_grad():
                acc = (model(X.double() if MODE == "float64" else X).argmax(1) == Y).float().mean()
            trial.report({{"val_accuracy": float(acc)}})

    return Task(fit=fit, num_classes=2)
"""

PARAMS = {"lr": 0.05, "batch_size": 32, "dropout": 0.0, "init": "none"}


def _trial(tmp_path: Path, mode: str, epochs: int = 3) -> tuple[Any, Any]:
    (tmp_path / f"watch_{mode}.py").write_text(TASK.format(mode=mode))
    sys.path.insert(0, str(tmp_path))
    try:
        runner = TrialRunner(
            f"watch_{mode}:task", {}, [str(tmp_path)], Settings().model_dump(), True, 1
        )
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # torch's "degrees of freedom" warning
            first, metrics, _, last = run_trial(runner, 0, PARAMS, epochs)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(f"watch_{mode}", None)
    findings = [*first.findings, *last.findings]
    return last, findings


@pytest.mark.parametrize("mode", ["float64", "freeze_after_watch", "one_row_first"])
def test_trial_watch_healthy_loops_run_without_a_crash_or_a_stop(tmp_path: Path, mode: str) -> None:
    last, findings = _trial(tmp_path, mode)
    assert last.error is None and last.stopped is None, (last.error, last.stopped)
    assert last.done
    assert not [f for f in findings if f.verdict in ("fail", "warn")], findings


def test_trial_watch_optimizer_holding_only_frozen_parameters_says_frozen_not_rebuilt(
    tmp_path: Path,
) -> None:
    last, _ = _trial(tmp_path, "frozen_optimizer")
    assert last.stopped is not None and last.stopped.startswith("stale_optimizer"), last
    assert "frozen" in last.stopped and "rebuilt" not in last.stopped


def test_trial_watch_step_that_applies_nothing_is_not_blamed_on_zero_gradients(
    tmp_path: Path,
) -> None:
    last, _ = _trial(tmp_path, "lr_below_precision")
    assert last.stopped is not None and last.stopped.startswith("weights_unchanged"), last
    assert "gradients are all zero" not in last.stopped
    assert "the gradients reach the weights but the step does not apply them" in last.stopped


def test_trial_watch_hints_name_modules_exactly_as_pytorch_does() -> None:
    from sweeper.probes._finding import fmt

    assert fmt({"_blocks.1._se_expand": 3.0}) == "_blocks.1._se_expand 3"


LEAK = """
import torch
from torch import nn
import torch.nn.functional as F
from sweeper.task import Task

LEAKS = {leaks!r}
X = torch.randn(2048, 256, generator=torch.Generator().manual_seed(0))
Y = (X[:, 0] > 0).long()


def task():
    def fit(params, trial):
        model = nn.Sequential(nn.Linear(256, 4096), nn.ReLU(), nn.Linear(4096, 2))
        opt = torch.optim.SGD(model.parameters(), lr=params["lr"])
        trial.watch(model, opt)
        history = []  # every evaluation's loss, for a plot at the end
        for epoch in range(trial.epochs):
            for xb, yb in zip(X.split(256), Y.split(256)):
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
            model.eval()
            for xb, yb in zip(X.split(256), Y.split(256)):  # no torch.no_grad(): a graph each
                val = F.cross_entropy(model(xb), yb)
                # the classic leak: the loss tensor kept, and with it its graph's activations
                history.append(val if LEAKS else val.item())
            model.train()
            mean = float(sum(history[-8:])) / 8
            trial.report({{"val_accuracy": 0.5 + epoch * 0.01, "val_loss": mean}})

    return Task(fit=fit, num_classes=2)
"""


@pytest.mark.parametrize("leaks", [True, False])
def test_trial_memory_growth_names_a_running_loss_total_and_spares_its_fix(
    tmp_path: Path, leaks: bool
) -> None:
    name = f"leak_{int(leaks)}"
    (tmp_path / f"{name}.py").write_text(LEAK.format(leaks=leaks))
    sys.path.insert(0, str(tmp_path))
    try:
        runner = TrialRunner(f"{name}:task", {}, [str(tmp_path)], Settings().model_dump(), True, 1)
        updates = [runner.start(0, {**PARAMS, "lr": 0.01}, 6, True)]
        while not updates[-1].ended:
            updates.append(runner.epoch())
        runner.finish()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)
    last = updates[-1]
    findings = [f for u in updates for f in u.findings if f.probe == "memory_growth"]
    assert last.done and last.error is None, (last.error, last.stopped)
    if leaks:
        assert findings and findings[0].verdict == "warn", findings
        assert "loss.item()" in findings[0].hint and "MB per epoch" in findings[0].measured
    else:
        assert not findings, findings


def test_trial_memory_growth_spares_first_epoch_allocations_and_a_plateau() -> None:
    from sweeper.probes import MemoryGrowth

    check = MemoryGrowth()
    # the first epoch's caches (+400 MB), then flat with noise: no warning
    assert all(check.see(mb) is None for mb in (300, 700, 705, 702, 708, 706, 709))
    steady = MemoryGrowth()
    seen = [steady.see(mb) for mb in (300, 700, 760, 820, 880, 940)]
    assert seen[-2] is not None or seen[-1] is not None
    assert sum(f is not None for f in seen) == 1  # once


def _local_fit(zero_grad: bool) -> Any:
    import torch
    import torch.nn.functional as F
    from torch import nn

    def fit(params: dict[str, Any], trial: Any) -> None:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(512, 8, generator=g)
        y = (x[:, 0] > 0).long()
        model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
        opt = torch.optim.SGD(model.parameters(), lr=params["lr"], momentum=0.9)
        trial.watch(model, opt)
        for _ in range(trial.epochs):
            for xb, yb in zip(x.split(32), y.split(32), strict=True):
                loss = F.cross_entropy(model(xb), yb)
                if zero_grad:
                    opt.zero_grad()
                loss.backward()
                trial.step(loss)
                opt.step()
            trial.report({"train_loss": float(loss)})

    return fit


def test_local_trial_runs_the_checks_a_study_would_and_stops_a_broken_loop() -> None:
    import sweeper

    healthy = sweeper.Trial({"lr": 0.05}, epochs=3)
    _local_fit(zero_grad=True)(healthy.params, healthy)
    assert len(healthy.history) == 3
    assert not [f for f in healthy.findings if f.verdict == "fail"], healthy.findings

    broken = sweeper.Trial({"lr": 0.05}, epochs=3)
    with pytest.raises(sweeper.TrialStopped) as stop:
        _local_fit(zero_grad=False)(broken.params, broken)
    assert stop.value.reason.startswith("grad_not_zeroed"), stop.value.reason
    assert [f.probe for f in broken.findings if f.verdict == "fail"] == ["grad_not_zeroed"]

    unchecked = sweeper.Trial({"lr": 0.05}, epochs=3, checks=False)
    _local_fit(zero_grad=False)(unchecked.params, unchecked)  # nothing stops it
    assert len(unchecked.history) == 3 and unchecked.findings == []


def _gan_fit(g_zero_grad: bool) -> Any:
    import torch
    import torch.nn.functional as F
    from torch import nn

    def fit(params: dict[str, Any], trial: Any) -> None:
        torch.manual_seed(0)
        real = torch.randn(256, 2) * 0.5 + 2.0
        gen = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
        disc = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 1))
        g_opt = torch.optim.Adam(gen.parameters(), lr=params["lr"])
        d_opt = torch.optim.Adam(disc.parameters(), lr=params["lr"])
        trial.watch(gen, g_opt)
        trial.watch(disc, d_opt)
        for _ in range(trial.epochs):
            for xb in real.split(32):
                fake = gen(torch.randn(len(xb), 4))
                d_loss = F.binary_cross_entropy_with_logits(
                    disc(torch.cat([xb, fake.detach()])),
                    torch.cat([torch.ones(len(xb), 1), torch.zeros(len(xb), 1)]),
                )
                d_opt.zero_grad()
                d_loss.backward()
                d_opt.step()
                g_loss = F.binary_cross_entropy_with_logits(disc(fake), torch.ones(len(xb), 1))
                if g_zero_grad:  # the bug: the generator's gradients summed over steps
                    g_opt.zero_grad()
                g_loss.backward()
                g_opt.step()
            trial.report({"d_loss": float(d_loss), "g_loss": float(g_loss)})

    return fit


def test_two_watched_models_are_each_checked_and_the_first_ones_bug_is_named() -> None:
    """A GAN: the generator is watched first, the discriminator second; a forgotten
    zero_grad on the generator is still named (a second watch used to replace the first)."""
    import sweeper

    healthy = sweeper.Trial({"lr": 1e-3}, epochs=3)
    _gan_fit(g_zero_grad=True)(healthy.params, healthy)
    assert len(healthy.history) == 3
    assert not [f for f in healthy.findings if f.verdict == "fail"], healthy.findings

    broken = sweeper.Trial({"lr": 1e-3}, epochs=3)
    with pytest.raises(sweeper.TrialStopped) as stop:
        _gan_fit(g_zero_grad=False)(broken.params, broken)
    assert stop.value.reason.startswith("grad_not_zeroed"), stop.value.reason


def test_weights_updated_by_hand_are_still_watched_for_their_layers() -> None:
    import torch
    import torch.nn.functional as F
    from torch import nn

    import sweeper

    def fit(params: dict[str, Any], trial: Any) -> None:
        torch.manual_seed(0)
        x, y = torch.randn(512, 8), torch.randn(512, 1)
        model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 1))
        trial.watch(model)  # no optimizer: p.data updated by hand below
        for _ in range(trial.epochs):
            for xb, yb in zip(x.split(32), y.split(32), strict=True):
                loss = F.mse_loss(model(xb), yb)
                model.zero_grad()
                loss.backward()
                trial.step(loss)
                with torch.no_grad():
                    for p in model.parameters():
                        p -= params["lr"] * p.grad
            trial.report({"train_loss": float(loss)})

    ok = sweeper.Trial({"lr": 0.01}, epochs=2)
    fit(ok.params, ok)
    assert len(ok.history) == 2 and not [f for f in ok.findings if f.verdict == "fail"]
    diverging = sweeper.Trial({"lr": 5.0}, epochs=2)
    with pytest.raises(sweeper.TrialStopped) as stop:
        fit(diverging.params, diverging)
    assert stop.value.reason.split(":")[0] in (
        "nonfinite_loss",
        "loss_growth",
        "nonfinite_activation",
        "activation_explosion",
    ), stop.value.reason


def test_the_epoch_a_check_stops_at_is_reported_before_the_stop() -> None:
    import sweeper
    from sweeper.errors import TrialStopped

    class StopsAtSecond:
        """A monitor whose check fires at the second report (as at_chance does)."""

        reports = 0

        def watch(self, *_: Any) -> None: ...
        def on_loss(self, *_: Any) -> None: ...
        def close(self) -> None: ...

        def on_report(self, metrics: dict[str, float]) -> None:
            self.reports += 1
            if self.reports == 2:
                raise TrialStopped("at_chance: the reported accuracy is at the baseline's")

    sent: list[dict[str, float]] = []
    trial = sweeper.Trial({}, epochs=5, reporter=sent.append, monitor=StopsAtSecond())
    trial.report({"val_accuracy": 0.1})
    with pytest.raises(TrialStopped) as stop:
        trial.report({"val_accuracy": 0.11})
    assert stop.value.reason.startswith("at_chance")
    assert sent == [{"val_accuracy": 0.1}, {"val_accuracy": 0.11}]  # the stopping epoch too
