"""Getting results out of a finished study: the HTML report, `best` in every format, the
trials table, and the Python API a training script uses."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import optuna
import pandas as pd
import torch
import yaml

import sweeper
from tests.conftest import run_cli


def _store(folder: Path) -> str:
    return f"sqlite:///{folder / 'sweeps.db'}"


def test_report_is_one_offline_html_file(finished_study: Path) -> None:
    out = run_cli("report", "shown", "--out", "r.html", cwd=finished_study)
    assert out.returncode == 0, out.stderr
    html = (finished_study / "r.html").read_text()
    assert not re.search(r"<script[^>]+src=", html)  # everything inline: opens offline
    assert "Plotly.newPlot" in html and "plotly.js" in html.lower()
    for heading in (
        "Optimization history",
        "Parameter importances",
        "Parallel coordinates",
        "Slice plots",
        "Study gate",
        "Compute the probes saved",
        "Trials and their probes",
    ):
        assert f"<h2>{heading}" in html
    assert html.count("<svg") >= 3  # overfit curve, lr range test, activation std per layer
    assert "overfit_tiny" in html and "lr_range_test" in html
    trials = optuna.load_study(study_name="shown", storage=_store(finished_study)).trials
    stopped = [t for t in trials if "sweeper:seconds_saved" in t.user_attrs]
    assert stopped, "the wide lr range should have produced a diverging trial"
    assert f"{len(stopped)} broken trials were stopped" in html


def test_best_in_every_format_carries_value_trial_hash_and_environment(
    finished_study: Path,
) -> None:
    def best(*args: str) -> str:
        out = run_cli("best", "shown", *args, cwd=finished_study)
        assert out.returncode == 0, out.stderr
        return out.stdout

    data = json.loads(best("--format", "json"))
    study = optuna.load_study(study_name="shown", storage=_store(finished_study))
    assert data["value"] == study.best_value and data["trial"] == study.best_trial.number
    fingerprint = study._storage.get_study_system_attrs(study._study_id)["sweeper:fingerprint"]
    assert data["definition_hash"] == fingerprint
    assert data["environment"]["torch"] == torch.__version__
    assert data["environment"]["device"] == "cpu"
    assert data["params"]["optimizer"] == "sgd"  # fixed params included

    assert yaml.safe_load(best("--format", "yaml")) == data
    namespace: dict[str, object] = {}
    exec(best("--format", "python"), namespace)  # pasteable Python
    assert namespace["BEST_PARAMS"] == data["params"]
    env = dict(line.split("=", 1) for line in best("--format", "env").splitlines())
    assert float(env["SWEEPER_LR"]) == data["params"]["lr"]
    assert shlex.split(env["SWEEPER_INIT"]) == [data["params"]["init"]]
    assert int(env["SWEEPER_TRIAL"]) == data["trial"]

    top = json.loads(best("--format", "json", "--top", "3"))
    values = [c["value"] for c in top]
    assert len(top) == 3 and values == sorted(values, reverse=True) and top[0] == data
    bad = run_cli("best", "shown", "--format", "env", "--top", "2", cwd=finished_study)
    assert bad.returncode == 1 and "--format env writes one config" in bad.stderr


def test_export_csv_and_parquet_hold_every_trial(finished_study: Path) -> None:
    trials = optuna.load_study(study_name="shown", storage=_store(finished_study)).trials
    for name in ("results.csv", "results.parquet"):
        out = run_cli("export", "shown", "--out", name, cwd=finished_study)
        assert out.returncode == 0, out.stderr
        path = finished_study / name
        table = pd.read_csv(path) if name.endswith(".csv") else pd.read_parquet(path)
        assert list(table["number"]) == [t.number for t in trials]
        assert list(table["state"]) == [t.state.name for t in trials]
        assert {"param_lr", "param_init", "param_optimizer", "probe_verdict", "stopped"} <= set(
            table.columns
        )
        assert set(table["probe_verdict"].dropna()) <= {"pass", "warn", "fail"}


def test_best_config_trains_a_fresh_model_as_the_readme_shows(finished_study: Path) -> None:
    from sweeper.examples.digits import mlp_task

    best = sweeper.best_config("shown", storage=_store(finished_study))
    assert isinstance(best, sweeper.BestConfig) and best.metric == "val_accuracy"
    task = mlp_task()
    model = sweeper.apply_init(task.build_model(best.params), best.params["init"])
    optimizer = torch.optim.SGD(model.parameters(), lr=best.params["lr"], momentum=0.9)
    x, y = (torch.as_tensor(v) for v in task.train)
    first = last = None
    for _ in range(20):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x.float()), y.long())
        loss.backward()
        optimizer.step()
        first = first if first is not None else loss.item()
        last = loss.item()
    assert last is not None and first is not None and last < first
