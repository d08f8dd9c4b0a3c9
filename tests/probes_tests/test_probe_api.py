"""`sweeper.probe(task)` from Python: the public report shape and the first bug cases."""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

import sweeper
from sweeper.examples.digits import digits_split, mlp_task


def test_probe_healthy_digits_mlp_passes_with_full_findings() -> None:
    report = sweeper.probe(mlp_task())
    assert report.verdict == "pass", [(f.probe, f.verdict, f.hint) for f in report.findings]
    for f in report.findings:
        assert f.verdict in ("pass", "warn", "fail")
        assert f.expected is not None
        assert isinstance(f.hint, str)
    init = report["init_loss"]
    assert init.measured == pytest.approx(np.log(10), rel=0.2)


def test_probe_softmax_before_cross_entropy_is_named_by_its_floor() -> None:
    task = mlp_task()
    build = task.build_model
    task.build_model = lambda p: nn.Sequential(build(p), nn.Softmax(dim=-1))
    report = sweeper.probe(task)
    f = report["overfit_tiny"]
    assert f.verdict == "fail"
    assert "softmax" in f.hint
    assert f.measured["loss"] == pytest.approx(np.log(np.e + 9) - 1, abs=0.1)


def test_probe_unnormalized_inputs_fail_init_loss() -> None:
    x_tr, x_va, y_tr, y_va = digits_split()
    task = mlp_task()
    task.train = (x_tr * 40 + 100, y_tr)
    report = sweeper.probe(task)
    f = report["init_loss"]
    assert f.verdict == "fail"
    assert "normalized" in f.hint


def test_probe_raw_logits_into_nll_fail_init_loss_below_zero() -> None:
    task = mlp_task()
    task.loss = "nll"
    report = sweeper.probe(task)
    f = report["init_loss"]
    assert f.verdict == "fail"
    assert "log_softmax" in f.hint
