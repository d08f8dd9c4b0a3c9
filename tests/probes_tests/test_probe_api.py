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
        assert f.verdict in ("pass", "skip", "warn", "fail")
        assert f.expected is not None
        assert isinstance(f.hint, str)
    init = report["init_loss"]
    assert init.measured == pytest.approx(np.log(10), rel=0.2)


def test_probe_softmax_before_cross_entropy_is_the_root_cause_and_overfit_follows() -> None:
    task = mlp_task()
    build = task.build_model
    task.build_model = lambda p: nn.Sequential(build(p), nn.Softmax(dim=-1))
    report = sweeper.probe(task)
    root = report.root_cause
    assert root is not None and root.probe == "output_activation_vs_loss"
    assert "softmax" in root.hint and "probabilities" in root.hint
    f = report["overfit_tiny"]  # the symptom still says what it saw, marked as following
    assert f.verdict == "fail" and f.cause == "output_activation_vs_loss"
    assert f.measured["loss"] == pytest.approx(np.log(np.e + 9) - 1, abs=0.1)


def test_probe_unnormalized_inputs_fail_init_loss_as_a_consequence_of_data_scale() -> None:
    x_tr, x_va, y_tr, y_va = digits_split()
    task = mlp_task()
    task.train = (x_tr * 40 + 100, y_tr)
    report = sweeper.probe(task)
    assert report.root_cause is not None and report.root_cause.probe == "data_scale"
    f = report["init_loss"]
    assert f.verdict == "fail" and f.cause == "data_scale"
    assert "normalized" in f.hint


def test_probe_raw_logits_into_nll_named_by_the_output_activation_vs_loss() -> None:
    task = mlp_task()
    task.loss = "nll"
    report = sweeper.probe(task)
    root = report.root_cause
    assert root is not None and root.probe == "output_activation_vs_loss"
    assert "log_softmax" in root.hint
    assert report["init_loss"].cause == "output_activation_vs_loss"


def test_probe_thresholds_are_the_settings_the_probes_use() -> None:
    """A threshold set per study changes the verdict: the unscaled digits pass data_scale
    once its fail bound is above their scale, and warn instead."""
    from sweeper.probes import Settings

    x_tr, _, y_tr, _ = digits_split()
    task = mlp_task()
    task.train = (x_tr * 40 + 100, y_tr)
    assert sweeper.probe(task)["data_scale"].verdict == "fail"
    loose = Settings(data_scale_fail=1e4, feature_spread_fail=1e9)
    assert sweeper.probe(task, settings=loose)["data_scale"].verdict == "warn"
    tight = Settings(gradient_ratio_max=1.0001)  # any depth at all now "vanishes or explodes"
    assert sweeper.probe(mlp_task(), settings=tight)["gradient_depth"].verdict == "fail"


def test_one_gate_table_model_rendered_by_the_cli_the_dashboard_and_the_html() -> None:
    """The Report stays a Report to every renderer; its one table model (GateTable) gives
    the same rows, root cause first, to the rich table, the Markdown note and the HTML."""
    from rich.console import Console

    from sweeper.cli._display import gate_table
    from sweeper.probes import Report
    from sweeper.report._dashboard import gate_note
    from sweeper.report._html import _gate_section

    task = mlp_task()
    build = task.build_model
    task.build_model = lambda p: nn.Sequential(build(p), nn.Softmax(dim=-1))
    report = sweeper.probe(task)
    model = report.table()
    assert model.roots[0][0] == "output_activation_vs_loss"
    follows = next(r for r in model.rows if r.probe == "overfit_tiny")
    assert follows.hint.startswith("follows from output_activation_vs_loss")
    back = Report.from_dict(report.to_dict()).table()  # stored and read back: the same table
    assert (back.verdict, back.roots, back.rows) == (model.verdict, model.roots, model.rows)

    note = gate_note(report)
    root_at = note.index("**Root cause: output_activation_vs_loss**")
    table_at = note.index("| probe |")
    assert root_at < table_at
    assert "follows from output_activation_vs_loss" in note  # overfit_tiny's row
    console = Console(width=100, record=True)
    console.print(gate_table(report))
    text = console.export_text()
    assert text.index("Root cause: output_activation_vs_loss") < text.index("overfit_tiny")
    assert "{'" not in text and "['" not in text  # no dict or list reprs
    html = _gate_section(report.to_dict())
    assert "follows from output_activation_vs_loss" in html  # the HTML shows the same hint text
    for row in model.rows:
        assert row.probe in html and row.probe in note
