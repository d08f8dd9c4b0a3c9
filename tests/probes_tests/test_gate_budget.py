"""The gate's cost reads in the user's epochs: its training probes are bounded by the split's
size, and each stops as soon as its verdict is clear (a blank-input fit that could not change
the verdict is not run; a short fit past the baseline half-way stops there), without losing a
bug it is there to catch."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from sweeper import Task
from sweeper.examples.digits import MLP, digits_split
from sweeper.probes import GATE_PROBES, Settings, run_gate
from sweeper.probes._baselines import blank_input_floor
from sweeper.probes._context import Context
from sweeper.training import Data
from tests.probes_tests.corpus import _digits_task

REF = {"lr": 1e-3, "batch_size": 32, "dropout": 0.0, "init": "none"}


def _only(*names: str) -> Settings:
    return Settings(disabled=tuple(p for p in GATE_PROBES if p not in names))


def _digits(**kw: Any) -> Task:
    return _digits_task(lambda p: MLP(64, 0.0), **kw)


def _ctx(task: Task, **params: Any) -> Context:
    return Context(task, Data.of(task, torch.device("cpu")), {**REF, **params}, torch.device("cpu"))


# -- the floor a model given the same input everywhere cannot go below ----------------------


def test_blank_input_floor_is_each_positions_label_entropy() -> None:
    task = _digits()
    ctx = _ctx(task)
    y = torch.tensor([[0, 1], [0, 2], [0, 1], [0, 2]])  # position 0 is constant, 1 is 50/50
    assert blank_input_floor(ctx, y) == pytest.approx(math.log(2) / 2)
    ignored = torch.tensor([[0, -100], [1, -100]])  # ignored targets do not count
    assert blank_input_floor(ctx, ignored) == pytest.approx(math.log(2))


def test_blank_input_floor_is_reached_by_a_model_that_ignores_its_input() -> None:
    """The floor is tight: a per-position table (what blank inputs allow) trained to the end
    gets down to it, and no lower."""
    ctx = _ctx(_digits())
    y = torch.randint(0, 4, (32, 3))
    table = nn.Parameter(torch.zeros(3, 4))
    opt = torch.optim.Adam([table], lr=0.1)
    for _ in range(600):
        loss = nn.functional.cross_entropy(table.expand(32, 3, 4).reshape(-1, 4), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    floor = blank_input_floor(ctx, y)
    assert floor is not None
    assert loss.item() == pytest.approx(floor, abs=1e-3)


def test_blank_input_floor_for_mse_and_bce_and_none_for_others() -> None:
    y = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    assert blank_input_floor(_ctx(_digits(loss="mse", kind="regression")), y) == pytest.approx(0.5)
    labels = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    bce = blank_input_floor(_ctx(_digits(loss="bce", kind="multilabel")), labels)
    assert bce == pytest.approx(math.log(2) / 2)
    custom = _digits(loss=lambda out, y: out.mean(), kind="custom")
    assert blank_input_floor(_ctx(custom), y) is None


# -- stopping as soon as the verdict is clear ---------------------------------------------------


def test_zero_input_baseline_passes_from_the_floor_without_a_second_fit() -> None:
    f = run_gate(_digits(), params=REF, settings=_only("overfit_tiny", "zero_input_baseline"))
    finding = f["zero_input_baseline"]
    assert finding.verdict == "pass", finding
    assert "blank inputs floor" in finding.measured
    assert "no blank-input fit needed" in finding.hint


class _IgnoresInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(len(x), 10) + 0 * x.sum()


def test_a_model_that_ignores_its_input_still_fails() -> None:
    """The shortcut never hides the bug it is there for: the tiny fit of a model that ignores
    its input levels off at the floor, so the floor decides nothing and the probes fail."""
    task = _digits(build_model=lambda p: _IgnoresInput())
    report = run_gate(task, params=REF, settings=_only("overfit_tiny", "zero_input_baseline"))
    assert report["overfit_tiny"].verdict == "fail"
    assert report["zero_input_baseline"].verdict == "fail", report["zero_input_baseline"]


def test_short_fit_of_a_healthy_task_stops_half_way() -> None:
    settings = _only("short_fit_vs_baseline", "label_noise")
    report = run_gate(_digits(), params=REF, settings=settings)
    finding = report["short_fit_vs_baseline"]
    assert finding.verdict == "pass"
    assert f"after {settings.short_fit_min_steps // 2} steps" in finding.expected
    assert report["label_noise"].verdict == "pass"


def test_misaligned_labels_still_run_the_whole_short_fit_and_fail() -> None:
    x_tr, _, y_tr, _ = digits_split()
    task = _digits(train=(x_tr, np.random.default_rng(0).permutation(y_tr)))
    settings = _only("short_fit_vs_baseline")
    finding = run_gate(task, params=REF, settings=settings)["short_fit_vs_baseline"]
    assert finding.verdict == "fail"
    assert f"after {settings.short_fit_min_steps} steps" in finding.expected


# -- bounded by the split ---------------------------------------------------------------------


def test_probe_batch_shrinks_on_a_large_split_only() -> None:
    small = _ctx(_digits(), batch_size=128)  # 1437 rows: the floor of 16 rows
    assert small.probe_batch(80, cap=128) == 16
    x = np.random.default_rng(0).normal(size=(40_000, 64)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 10, 40_000)
    large = _ctx(_digits(train=(x, y)), batch_size=128)
    # 0.4 of 40k rows over 80 steps: 200 rows a step, capped at the user's 128
    assert large.probe_batch(80, cap=128) == 128
    assert large.probe_batch(400, cap=128) == 40
    assert _ctx(_digits(), batch_size=8).probe_batch(80, cap=128) == 8  # never above the user's


def test_sequence_tiny_set_holds_a_few_rows_of_many_targets() -> None:
    from sweeper.probes._overfit import tiny_rows

    ids = torch.randint(0, 50, (200, 64))
    task = Task(
        build_model=lambda p: nn.Sequential(nn.Embedding(50, 8), nn.Linear(8, 50)),
        train=(ids, ids),
        val=(ids, ids),
        num_classes=50,
    )
    assert tiny_rows(_ctx(task)) == 4  # 128 targets would be 2 rows of 64: at least 4
    words = torch.randint(0, 50, (200, 16))
    task.train = (words, words)
    assert tiny_rows(_ctx(task)) == 8  # 128 targets: 8 rows of 16
    masked = words.clone()
    masked[:, 2:] = -100  # a masked LM: 2 counted targets a row, as many rows as allowed
    task.train = (words, masked)
    assert tiny_rows(_ctx(task)) == Settings().overfit_samples
    assert tiny_rows(_ctx(_digits())) == Settings().overfit_samples
