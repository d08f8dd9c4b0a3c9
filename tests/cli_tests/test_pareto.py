"""Several objectives at once: the definition's `objectives:` and `constraints:`, the costs
sweeper measures itself, a real study searched with Optuna's multi-objective TPE and its
constraints, and the front as `sweeper best`, `--pick`, `status` and `load_best_model` give it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from torch import nn

from sweeper.definition import parse_definition
from sweeper.definition._load import fingerprint
from sweeper.errors import DefinitionError
from sweeper.store import study_front
from sweeper.store._front import hypervolume
from sweeper.training import Trial
from sweeper.training._costs import Costs
from tests.conftest import run_here

BASE = """\
name: p
task: sweeper.examples.digits:mlp_task
budget: {trials: 4, epochs: 3}
search: {lr: 0.01, batch_size: 64, dropout: 0.0}
"""


def _spec(extra: str) -> object:
    return parse_definition(BASE + extra, "<test>")


def test_one_objective_keeps_its_fingerprint_however_it_is_written() -> None:
    plain = fingerprint(_spec(""))  # type: ignore[arg-type]
    assert fingerprint(_spec("objective: {metric: val_accuracy}\n")) == plain  # type: ignore[arg-type]
    assert fingerprint(_spec("objectives: [{metric: val_accuracy}]\n")) == plain  # type: ignore[arg-type]
    several = _spec("objectives: [{metric: val_accuracy}, {metric: params}]\n")
    assert fingerprint(several) != plain  # type: ignore[arg-type]
    assert [o.direction for o in several.goals()] == ["maximize", "minimize"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ("objectives: [{metric: val_accuracy}, {metric: latency}]\n", "did you mean 'latency_ms'"),
        ("objectives: [{metric: val_accuracy}, {metric: f1}]\n", "maximize or minimize"),
        (
            "objective: {metric: val_loss}\n"
            "objectives: [{metric: val_accuracy}, {metric: flops}]\n",
            "not both",
        ),
        ("objectives: [{metric: params}, {metric: val_accuracy}]\n", "list the trial's own"),
        ("objectives: [{metric: val_accuracy}, {metric: params, direction: maximize}]\n", "cost"),
        (
            "objectives: [{metric: val_accuracy}, {metric: params}]\n"
            "constraints: [{metric: val_accuracy, max: 0.9}]\n",
            "caps it",
        ),
        ("constraints: [{metric: params}]\n", "no bound"),
        ("constraints: [{metric: flops, min: 10, max: 5}]\n", "no trial can keep it"),
        (
            "constraints: [{metric: flops, min: 10}, {metric: flops, max: 5}]\n",
            "no trial can keep both",
        ),
        ("sampler: {type: nsga2}\n", "several objectives"),
        (
            "objectives: [{metric: val_accuracy}, {metric: params}]\n"
            "pruner: {type: hyperband, warmup_epochs: 1}\n",
            "one objective only",
        ),
    ],
)
def test_a_bad_combination_is_refused_before_anything_is_written(extra: str, said: str) -> None:
    with pytest.raises(DefinitionError) as e:
        _spec(extra)
    assert said in str(e.value), str(e.value)


def test_costs_are_measured_on_the_watched_model_at_the_last_report() -> None:
    model = nn.Sequential(nn.Linear(64, 10))
    names = ["params", "flops", "latency_ms", "peak_memory_mb", "train_seconds"]
    reports: list[dict[str, float]] = []
    costs = Costs(names, batch=1, device=torch.device("cpu"))
    trial = Trial({}, epochs=2, reporter=reports.append, costs=costs)
    trial.watch(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        for _ in range(5):
            x = torch.randn(32, 64)
            loss = model(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        trial.report({"val_loss": float(loss.detach())})
    assert not set(names) & set(reports[0])  # measured once, at the last report
    last = reports[1]
    assert last["params"] == 64 * 10 + 10
    assert last["flops"] == 2 * 64 * 10  # one sample through the Linear's matmul
    assert last["latency_ms"] > 0 and math.isfinite(last["latency_ms"])
    assert last["train_seconds"] > 0
    assert last["peak_memory_mb"] >= 0
    assert model.training  # left as the trial had it


def test_peak_memory_without_a_resettable_peak_falls_back_to_the_reports_samples(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A /proc whose clear_refs cannot be written (some containers): the largest resident
    memory seen at a report stands in for the trial's peak."""
    import sweeper.training._costs as costs_module

    real = costs_module.Path

    class NoClearRefs(type(real())):  # type: ignore[misc]
        def write_text(self, *a: object, **k: object) -> int:
            if str(self) == "/proc/self/clear_refs":
                raise PermissionError(13, "read-only /proc")
            return super().write_text(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(costs_module, "Path", NoClearRefs)
    costs = Costs(["peak_memory_mb"], batch=1, device=torch.device("cpu"))
    assert not costs.hwm
    held = torch.ones(64, 2**20 // 4)  # 64 MB, alive at the report
    costs.sample()
    del held
    peak = costs.measure(None)["peak_memory_mb"]
    assert 48 <= peak < 1024, peak


def _completed(rows: list[tuple[float, float, float]]) -> list[Any]:
    """Completed trials numbered 0, 1, ... of (accuracy, params, constraint value) rows."""
    trials = []
    for i, (acc, size, c) in enumerate(rows):
        t = create_trial(
            values=[acc, size],
            params={"x": i / 10},
            distributions={"x": FloatDistribution(0, 1)},
            system_attrs={"constraints": [c]},
            state=TrialState.COMPLETE,
        )
        t.number = i
        trials.append(t)
    return trials


def test_the_front_is_optunas_own_and_a_pick_is_one_of_its_members() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        study.set_metric_names(["val_accuracy", "params"])
    rows = [
        (0.95, 900.0, -1),
        (0.90, 300.0, -1),
        (0.80, 100.0, -1),
        (0.99, 50.0, 5),
        (0.7, 800.0, -1),
    ]
    for t in _completed(rows):  # the 4th is infeasible: never on the front, never picked
        study.add_trial(t)
    front = study_front(study)
    assert [t.number for t in front.members] == [0, 1, 2]
    assert front.pick().number == 0 and front.pick("params").number == 2
    assert front.pick("knee").number == 1  # nearest the ideal once each axis is scaled
    hv = hypervolume(study, front)
    assert hv is not None and 0 < hv < 1.1**2


def test_a_stage_narrows_around_the_front_by_non_dominated_rank() -> None:
    from sweeper.search import top_share

    rows = [  # (accuracy, params, constraint): maximize the first, minimize the second
        (0.95, 900.0, -1),  # front
        (0.90, 300.0, -1),  # front
        (0.80, 100.0, -1),  # front
        (0.85, 950.0, -1),  # behind the front (0.95 at 900 beats it): second layer
        (0.60, 400.0, -1),  # second layer
        (0.99, 10.0, 5),  # would dominate all, but infeasible: never kept
        (0.50, 990.0, -1),  # third layer
    ]
    trials = _completed(rows)
    # the whole front even where the share asks for fewer, best first on the first objective
    assert [t.values for t in top_share(trials, 0.1, [True, False])] == [
        [0.95, 900.0],
        [0.90, 300.0],
        [0.80, 100.0],
    ]
    # a larger share takes the next layer whole
    assert {t.number for t in top_share(trials, 0.6, [True, False])} == {0, 1, 2, 3, 4}
    # one objective: the top share by value, as before (the constraint not consulted)
    assert [t.number for t in top_share(trials, 0.3, [True])] == [5, 0, 1]


@pytest.mark.usefixtures("local_ray")
def test_a_staged_study_of_two_objectives_narrows_around_its_front_and_confirms_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "staged.yaml").write_text(
        """\
name: staged
task: sweeper.examples.digits:mlp_task
storage: sqlite:///sweeps.db
objectives: [{metric: val_accuracy}, {metric: params}]
stages:
  - {trials: 5, epochs: 1, narrow: 0.4}
  - {trials: 3, epochs: 2}
confirm: {top: 2, seeds: 2}
sampler: {type: tpe, seed: 0, startup_trials: 3}
pruner: {type: none}
probes: {gate: 'off'}
search:
  lr: {type: float, low: 2.0e-3, high: 2.0e-2, log: true}
  batch_size: 64
  dropout: 0.0
  hidden: {type: int, low: 8, high: 256, log: true}
"""
    )
    out = run_here("run", "staged.yaml", "--plain", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "narrowed around the front-ranked" in out.stdout, out.stdout
    study = optuna.load_study(study_name="staged", storage=f"sqlite:///{tmp_path}/sweeps.db")
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    confirms = [t for t in done if "sweeper:confirms" in t.user_attrs]
    done = [t for t in done if t not in confirms]
    first = [t for t in done if t.user_attrs["sweeper:stage"] == 1]
    second = [t for t in done if t.user_attrs["sweeper:stage"] == 2]
    assert len(first) == 5 and len(second) == 3
    from sweeper.search import top_share

    kept = top_share(first, 0.4, [True, False])
    low = min(t.params["hidden"] for t in kept)
    high = max(t.params["hidden"] for t in kept)
    narrowed = study._storage.get_study_system_attrs(study._study_id)["sweeper:narrowed"]["2"]
    assert narrowed["from_top"] == len(kept) and narrowed["of"] == 5
    space = narrowed["space"]["hidden"]
    assert space["low"] <= low and high <= space["high"]
    assert all(space["low"] <= t.params["hidden"] <= space["high"] for t in second)
    # the front `sweeper best` gives is the last stage's (an earlier stage trained less)
    front = study_front(study)
    assert front.members and {t.number for t in front.members} <= {t.number for t in second}
    as_json = json.loads(run_here("best", "staged", "--format", "json", cwd=tmp_path).stdout)
    assert {f["trial"] for f in as_json["front"]} == {t.number for t in front.members}
    # confirmation: members of the front, two new seeds each, every objective's mean ± std
    sources = {t.user_attrs["sweeper:confirms"] for t in confirms}
    assert sources <= {t.number for t in front.members}
    assert len(sources) == min(2, len(front.members)) and len(confirms) == 2 * len(sources)
    assert "front members confirmed over new seeds" in out.stdout, out.stdout
    for f in as_json["front"]:
        if f["trial"] not in sources:
            assert "confirmed" not in f
            continue
        runs = [t for t in confirms if t.user_attrs["sweeper:confirms"] == f["trial"]]
        each = f["confirmed"]["objectives"]
        assert set(each) == {"val_accuracy", "params"}
        accs = [t.values[0] for t in runs]
        assert each["val_accuracy"]["mean"] == pytest.approx(sum(accs) / 2)
        assert each["val_accuracy"]["std"] == pytest.approx(abs(accs[0] - accs[1]) / math.sqrt(2))
        assert each["params"]["std"] == 0.0  # the same configuration: the same size
        assert each["params"]["search_value"] == f["values"]["params"]
    status = json.loads(run_here("status", "staged", "--json", cwd=tmp_path).stdout)
    assert status["front"]["size"] == len(front.members)
    assert set(status["confirmed"]["objectives"]) == {"val_accuracy", "params"}


@pytest.mark.usefixtures("local_ray")
def test_a_study_of_accuracy_against_size_and_speed_searches_and_gives_its_front(
    tmp_path: Path,
) -> None:
    (tmp_path / "pareto.yaml").write_text(
        """\
name: pareto
task: sweeper.examples.digits:mlp_task
storage: sqlite:///sweeps.db
budget: {trials: 6, epochs: 2}
objectives:
  - {metric: val_accuracy}
  - {metric: params}
  - {metric: latency_ms}
constraints:
  - {metric: flops, max: 40000}
sampler: {type: tpe, seed: 0, startup_trials: 3}
pruner: {type: none}
search:
  lr: {type: float, low: 2.0e-3, high: 1.0e-2, log: true}
  batch_size: 64
  dropout: 0.0
  hidden: {type: int, low: 8, high: 256, log: true}
"""
    )
    out = run_here("run", "pareto.yaml", "--plain", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Pareto front:" in out.stdout and "--pick" in out.stdout
    study = optuna.load_study(study_name="pareto", storage=f"sqlite:///{tmp_path}/sweeps.db")
    assert len(study.directions) == 3
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 6
    for t in done:  # the costs are measured, the constraint recorded as Optuna's own
        metrics = t.user_attrs["sweeper:metrics"]
        assert t.values == [metrics["val_accuracy"], metrics["params"], metrics["latency_ms"]]
        assert t.system_attrs["constraints"] == [metrics["flops"] - 40000]
    front = study.best_trials
    assert front and all(t.system_attrs["constraints"][0] <= 0 for t in front)

    again = run_here("run", "pareto.yaml", "--plain", cwd=tmp_path)  # the budget is met
    assert again.returncode == 0 and "nothing to run" in again.stdout, again.stdout + again.stderr
    assert f"Pareto front: {len(front)} trials" in again.stdout
    import sweeper

    returned = sweeper.run(  # from Python
        str(tmp_path / "pareto.yaml"), storage=f"sqlite:///{tmp_path}/sweeps.db", progress=False
    )
    assert {t.number for t in returned.best_trials} == {t.number for t in front}

    table = run_here("best", "pareto", cwd=tmp_path)
    assert table.returncode == 0 and "Pareto front of 'pareto'" in table.stdout
    as_json = json.loads(run_here("best", "pareto", "--format", "json", cwd=tmp_path).stdout)
    assert {f["trial"] for f in as_json["front"]} == {t.number for t in front}
    assert as_json["picked"]["trial"] == max(front, key=lambda t: t.values[0]).number
    smallest = min(front, key=lambda t: t.values[1])
    picked = json.loads(
        run_here("best", "pareto", "--pick", "params", "--format", "json", cwd=tmp_path).stdout
    )
    assert picked["picked"]["trial"] == smallest.number
    knee = json.loads(
        run_here("best", "pareto", "--pick", "knee", "--format", "json", cwd=tmp_path).stdout
    )
    assert knee["picked"]["trial"] in {t.number for t in front}
    wrong = run_here("best", "pareto", "--pick", "val_loss", cwd=tmp_path)
    assert wrong.returncode != 0 and "not one of the study's objectives" in wrong.stderr

    status = json.loads(run_here("status", "pareto", "--json", cwd=tmp_path).stdout)
    assert status["front"]["size"] == len(front) and status["front"]["hypervolume"] > 0

    exported = run_here("export", "pareto", "--out", "trials.csv", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    import csv

    with open(tmp_path / "trials.csv") as f:
        rows = {int(r["number"]): r for r in csv.DictReader(f)}
    for t in done:  # each objective's value, and whether the trial kept the constraints
        assert float(rows[t.number]["value_params"]) == t.values[1]
        assert rows[t.number]["feasible"] == str(t.system_attrs["constraints"][0] <= 0)

    from sweeper.report import build_report

    html = build_report("pareto", f"sqlite:///{tmp_path}/sweeps.db")
    assert "<h2>Pareto front</h2>" in html and "Pareto-front Plot" in html

    model = sweeper.load_best_model(
        "pareto", storage=f"sqlite:///{tmp_path}/sweeps.db", pick="params"
    )
    assert sum(p.numel() for p in model.parameters()) == smallest.values[1]


@pytest.mark.usefixtures("local_ray")
def test_a_study_where_no_trial_keeps_the_constraints_says_so(tmp_path: Path) -> None:
    (tmp_path / "tight.yaml").write_text(
        """\
name: tight
task: sweeper.examples.digits:mlp_task
storage: sqlite:///sweeps.db
budget: {trials: 3, epochs: 1}
objectives: [{metric: val_accuracy}, {metric: latency_ms}]
constraints: [{metric: params, max: 10}]
pruner: {type: none}
probes: {gate: "off"}
search: {lr: 0.005, batch_size: 64, dropout: 0.0, hidden: {type: int, low: 8, high: 32}}
"""
    )
    out = run_here("run", "tight.yaml", "--plain", cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "no completed trial kept the constraints (params <= 10)" in out.stdout, out.stdout
    assert "sweeper best" not in out.stdout  # no best to suggest
    study = optuna.load_study(study_name="tight", storage=f"sqlite:///{tmp_path}/sweeps.db")
    assert len([t for t in study.trials if t.state == TrialState.COMPLETE]) == 3
    assert study.best_trials == []  # Optuna's own front: no feasible trial
