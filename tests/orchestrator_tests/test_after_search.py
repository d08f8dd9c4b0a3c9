"""After the search, end to end on real Ray and a real store: the bias/variance verdict on an
overfitting and an underfitting task, a staged study with confirmation over seeds, and its
resume after kills between stages and during confirmation."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import optuna
import pytest
import yaml

from tests.conftest import (
    kill_group,
    run_cli,
    run_here,
    start_cli,
    trials_of,
    wait_until,
    write_study,
)

pytestmark = pytest.mark.usefixtures("local_ray")


def _status(tmp_path: Path, name: str) -> dict:
    out = run_here("status", name, "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


def test_overfitting_task_is_high_variance_with_regularization_and_data_steps(
    tmp_path: Path,
) -> None:
    # 50 training rows, a 512-wide MLP, no dropout: it learns them by heart
    path = write_study(
        tmp_path,
        name="overfit",
        trials=3,
        epochs=15,
        task="sweeper.examples.digits:few_rows_task",
        search="""
          lr: {type: float, low: 1.0e-3, high: 3.0e-3, log: true}
          batch_size: 16
          dropout: 0.0
          hidden: 512
        """,
        extra="probes: {gate: 'off'}\n",
    )
    out = run_here("run", path.name, "--plain", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "diagnosis: high variance" in out.stdout
    d = _status(tmp_path, "overfit")["diagnosis"]
    assert d["verdict"] == "high_variance", d
    assert d["train"] > 0.99 and d["val"] < d["train"] - 0.1 and d["target"] == 1.0
    steps = " ".join(d["next"])
    assert "more training data" in steps and "regularization" in steps
    assert "dropout is fixed at 0" in steps  # from the study's own space: search it


def test_underfitting_task_is_high_bias_with_capacity_and_length_steps(tmp_path: Path) -> None:
    # a linear model on three of the 64 pixels cannot fit its own training split
    path = write_study(
        tmp_path,
        name="underfit",
        trials=3,
        epochs=6,
        task="sweeper.examples.digits:three_pixels_task",
        search="""
          lr: {type: float, low: 3.0e-3, high: 3.0e-2, log: true}
          batch_size: 32
          dropout: 0.0
        """,
        extra="probes: {gate: warn}\n",
    )
    out = run_here("run", path.name, "--plain", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    d = _status(tmp_path, "underfit")["diagnosis"]
    assert d["verdict"] == "high_bias", d
    assert d["train"] < 0.7 and abs(d["val"] - d["train"]) < 0.1
    assert d["baseline"] is not None and d["baseline"] < 0.2  # the gate's majority class
    steps = " ".join(d["next"])
    assert "a bigger network" in steps and "train longer: budget.epochs 6 -> 12" in steps
    # the same verdict in the HTML report
    report = run_here("report", "underfit", "--out", "r.html", cwd=tmp_path)
    assert report.returncode == 0, report.stdout + report.stderr
    html = (tmp_path / "r.html").read_text()
    assert "After the search" in html and "high bias" in html


def _staged(tmp_path: Path, name: str) -> Path:
    return write_study(
        tmp_path,
        name=name,
        trials=0,  # replaced: the stages give the budget
        search="""
          lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
          batch_size: {type: categorical, choices: [32, 64, 128]}
          dropout: {type: float, low: 0.0, high: 0.5}
          hidden: {type: int, low: 16, high: 128, log: true}
        """,
        extra="""
        stages:
          - {trials: 6, epochs: 2, narrow: 0.5}
          - {trials: 3, epochs: 4}
        confirm: {top: 2, seeds: 2}
        probes: {gate: 'off'}
        """,
    )


def _fix_budget(path: Path) -> None:
    spec = yaml.safe_load(path.read_text())
    spec.pop("budget")
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


def _check_staged(url: str, name: str) -> dict:
    """The invariants of a finished staged + confirmed study; returns the trials by role."""
    trials = trials_of(url, name)
    by_stage = {1: [], 2: []}
    confirms = []
    for t in trials:
        if "sweeper:confirms" in t.user_attrs:
            confirms.append(t)
        elif t.state.name in ("COMPLETE", "PRUNED"):
            by_stage[t.user_attrs["sweeper:stage"]].append(t)
    assert len(by_stage[1]) == 6 and len(by_stage[2]) == 3, {k: len(v) for k, v in by_stage.items()}
    assert all(len(t.intermediate_values) == 2 for t in by_stage[1] if t.state.name == "COMPLETE")
    assert all(len(t.intermediate_values) == 4 for t in by_stage[2] if t.state.name == "COMPLETE")
    done = [t for t in confirms if t.state.name == "COMPLETE"]
    assert len(done) == 4, [(t.number, t.state.name) for t in confirms]
    assert all(len(t.intermediate_values) == 4 for t in done)  # the full epochs
    sources = {t.user_attrs["sweeper:confirms"] for t in done}
    assert len(sources) == 2 and sources <= {t.number for t in by_stage[2]}
    for t in done:  # the same params as the trial confirmed, a seed of its own (its number)
        source = trials[t.user_attrs["sweeper:confirms"]]
        assert t.params == source.params and t.number != source.number
    return {"stage1": by_stage[1], "stage2": by_stage[2], "confirms": done}


def test_staged_confirmed_study_narrows_runs_longer_and_reports_the_mean(tmp_path: Path) -> None:
    path = _staged(tmp_path, "staged")
    _fix_budget(path)
    out = run_here("run", path.name, "--plain", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    roles = _check_staged(url, "staged")

    # stage 2 searched a narrower space: lr's log-width shrank, and every stage-2 trial is in it
    status = _status(tmp_path, "staged")
    assert [s["stage"] for s in status["stages"]] == [1, 2]
    space = status["stages"][1]["space"]
    lr = space["lr"]
    assert math.log(lr["high"] / lr["low"]) < 0.8 * math.log(1.0e-1 / 1.0e-4)
    for t in roles["stage2"]:
        assert lr["low"] <= t.params["lr"] <= lr["high"]
        assert space["hidden"]["low"] <= t.params["hidden"] <= space["hidden"]["high"]
        assert t.params["batch_size"] in space["batch_size"]

    # the best is the configuration with the best mean over its new seeds, from the last stage
    best = json.loads(run_here("best", "staged", "--format", "json", cwd=tmp_path).stdout)
    assert best["stage"] == 2
    conf = best["confirmed"]
    assert len(conf["values"]) == 2 and conf["std"] >= 0
    assert conf["mean"] == pytest.approx(sum(conf["values"]) / 2)
    means = {}
    for t in roles["confirms"]:
        means.setdefault(t.user_attrs["sweeper:confirms"], []).append(t.values[0])
    top = max(means, key=lambda n: (sum(means[n]) / 2, -n))
    assert best["trial"] == top
    assert status["confirmed"]["mean"] == pytest.approx(conf["mean"])
    assert "± " in out.stdout and "confirmed over new seeds" in out.stdout
    assert "single-seed best" in out.stdout
    assert "stage 2: 3 trials x 4 epochs" in out.stdout
    # and in optuna-dashboard's note, under the (skipped) gate's
    storage = optuna.storages.RDBStorage(url)
    system = storage.get_study_system_attrs(storage.get_study_id_from_name("staged"))
    storage.engine.dispose()
    note = "".join(str(v) for k, v in sorted(system.items()) if "note" in k)
    assert "after the search" in note and "confirmed over new seeds" in note


def test_staged_study_resumes_after_kills_between_stages_and_in_confirmation(
    tmp_path: Path,
) -> None:
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    path = _staged(tmp_path, "resumed")
    _fix_budget(path)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"

    def killed_when(what: str, check) -> None:
        proc = start_cli("run", path.name, "--plain", cwd=tmp_path)
        try:
            wait_until(what, lambda: check(trials_of(url, "resumed")), timeout=180, proc=proc)
        finally:
            kill_group(proc)

    # a kill at a random moment of stage 2 (its first trial may still be starting), then one
    # during the confirmation runs
    stage2 = rng.randint(1, 3)
    killed_when(
        f"{stage2} stage-2 trials started (seed {seed})",
        lambda ts: sum(t.user_attrs.get("sweeper:stage") == 2 for t in ts) >= stage2,
    )
    killed_when(
        f"a confirmation run started (seed {seed})",
        lambda ts: any(
            "sweeper:confirms" in t.user_attrs and t.state.name == "RUNNING" for t in ts
        ),
    )
    out = run_cli("run", path.name, "--plain", cwd=tmp_path)
    assert out.returncode == 0, f"seed {seed}\n" + out.stdout + out.stderr
    _check_staged(url, "resumed")
