"""13. Several objectives: the Pareto front of val_accuracy against trainable parameters, on
the digits MLP (its width searched) and on the digits CNN (its channels searched), at equal
trials and seeds. sweeper (`objectives:`, multivariate TPE, its
gate off, its per-trial probes on, trials on Ray) against plain Optuna in this process with
NSGA-II, with multi-objective TPE and with random search, and Ray Tune with OptunaSearch in its
multi-objective mode (metric and mode lists, multi-objective TPE, two trials at a time on the
same Ray), each trial trained by the same loop (sweeper's own, called directly: the same model,
data, epochs and seed).

Figures: the hypervolume of each front against a fixed reference point, on (1 - val_accuracy,
params / the space's largest model), reference (1, 1.1): larger is better; and the wall time,
both as ratios to sweeper's, per task."""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from benchmarks._common import mean_sd, run_sweeper

LR = (1.0e-3, 3.0e-2)


@dataclass(frozen=True)
class Problem:
    """A task of sweeper's digits examples, the width param searched (log) and its range, and
    the budget every system gets."""

    name: str
    task: str  # a sweeper.examples.digits function
    width: str
    low: int
    high: int
    trials: int
    epochs: int

    def largest(self) -> float:
        """Trainable parameters of the space's largest model."""
        from sweeper.examples import digits

        task = getattr(digits, self.task)()
        model = task.build_model({self.width: self.high, "dropout": 0.0})
        return float(sum(p.numel() for p in model.parameters() if p.requires_grad))


MLP = Problem("digits MLP", "mlp_task", "hidden", 8, 256, trials=30, epochs=4)
CNN = Problem("digits CNN", "cnn_task", "channels", 2, 32, trials=30, epochs=4)


def _hypervolume(points: list[tuple[float, float]], largest: float) -> float:
    """Of (val_accuracy, params) points, both scaled to losses in [0, ~1], reference (1, 1.1)."""
    from optuna._hypervolume import compute_hypervolume

    if not points:
        return 0.0
    losses = np.asarray([[1.0 - a, p / largest] for a, p in points], dtype=float)
    losses = losses[(losses[:, 0] < 1.0) & (losses[:, 1] < 1.1)]
    if len(losses) == 0:
        return 0.0
    return float(compute_hypervolume(losses, np.asarray([1.0, 1.1])))


def _train(problem: Problem, params: dict[str, Any], epochs: int, seed: int) -> tuple[float, float]:
    """The problem's model trained by sweeper's own loop, called directly: (val_accuracy,
    params)."""
    from sweeper.examples import digits
    from sweeper.training import Data, evaluate, start_run, train_epoch

    task = getattr(digits, problem.task)()
    full = {"batch_size": 64, "dropout": 0.0, "init": "none", "optimizer": "adam", **params}
    cpu = torch.device("cpu")
    run = start_run(task, Data.of(task, cpu), full, cpu, seed=seed, epochs=epochs)
    for _ in range(epochs):
        train_epoch(run)
    size = float(sum(p.numel() for p in run.model.parameters() if p.requires_grad))
    return float(evaluate(run)["val_accuracy"]), size


def _optuna(
    problem: Problem, sampler: optuna.samplers.BaseSampler, trials: int, epochs: int
) -> Any:
    def objective(trial: optuna.Trial) -> tuple[float, float]:
        params = {
            "lr": trial.suggest_float("lr", *LR, log=True),
            problem.width: trial.suggest_int(problem.width, problem.low, problem.high, log=True),
        }
        return _train(problem, params, epochs, trial.number)

    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return [tuple(t.values) for t in study.best_trials], time.perf_counter() - t0


def _tune_trainable(config: dict[str, Any]) -> None:
    from ray import tune

    # a seed per trial from its params (Tune's trial ids are random hex, with no number like
    # the Optuna peers' trial.number): different for every trial, the same on a re-run
    seed = int(config["lr"] * 1e9) % 10_000
    problem: Problem = config["problem"]
    params = {"lr": config["lr"], problem.width: config[problem.width]}
    acc, size = _train(problem, params, config["epochs"], seed)
    tune.report({"val_accuracy": acc, "params": size})


def _tune(problem: Problem, folder: Path, seed: int, trials: int, epochs: int) -> Any:
    """Ray Tune with OptunaSearch, multi-objective: every reported (val_accuracy, params);
    the hypervolume of all points is the front's."""
    from optuna.distributions import FloatDistribution, IntDistribution
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    search = OptunaSearch(
        space={
            "lr": FloatDistribution(*LR, log=True),
            problem.width: IntDistribution(problem.low, problem.high, log=True),
        },
        metric=["val_accuracy", "params"],
        mode=["max", "min"],
        sampler=optuna.samplers.TPESampler(
            seed=seed, multivariate=True, n_startup_trials=min(10, trials // 2)
        ),
    )
    t0 = time.perf_counter()
    tuner = tune.Tuner(
        tune.with_resources(
            lambda cfg: _tune_trainable({**cfg, "epochs": epochs, "problem": problem}), {"cpu": 1}
        ),
        tune_config=tune.TuneConfig(
            search_alg=search, num_samples=trials, max_concurrent_trials=2, reuse_actors=True
        ),
        run_config=tune.RunConfig(
            storage_path=str(folder / "tune"), name=f"pareto-{problem.task}-{seed}", verbose=0
        ),
    )
    results = tuner.fit()
    wall = time.perf_counter() - t0
    points = [
        (float(r.metrics["val_accuracy"]), float(r.metrics["params"]))
        for r in results
        if r.error is None and r.metrics and "params" in r.metrics
    ]
    front = [p for p in points if not any(q != p and q[0] >= p[0] and q[1] <= p[1] for q in points)]
    return sorted(set(front)), wall


def _sweeper(problem: Problem, folder: Path, seed: int, trials: int, epochs: int) -> Any:
    name = f"pareto-{problem.task}-{seed}"
    startup = min(10, trials // 2)
    store = f"sqlite:///{folder / name}.db"
    t0 = time.perf_counter()
    run_sweeper(f"""
        name: {name}
        task: sweeper.examples.digits:{problem.task}
        storage: {store}
        budget: {{trials: {trials}, epochs: {epochs}}}
        objectives: [{{metric: val_accuracy}}, {{metric: params}}]
        search:
          lr: {{type: float, low: {LR[0]}, high: {LR[1]}, log: true}}
          {problem.width}: {{type: int, low: {problem.low}, high: {problem.high}, log: true}}
          batch_size: 64
          dropout: 0.0
          optimizer: adam
        sampler: {{type: tpe, seed: {seed}, startup_trials: {startup}}}
        pruner: {{type: none}}
        probes: {{gate: "off", trial: true}}
        resources: {{cpus: 1, max_concurrent: 2}}
    """)
    wall = time.perf_counter() - t0
    study = optuna.load_study(study_name=name, storage=store)
    return [tuple(t.values) for t in study.best_trials], wall


def _compare(problem: Problem, folder: Path, seeds: list[int], quick: bool) -> list[dict[str, Any]]:
    """The rows of one task: every system over `seeds`, equal trials."""
    trials = 6 if quick else problem.trials
    epochs = 1 if quick else problem.epochs
    largest = problem.largest()
    hv: dict[str, list[float]] = {}
    wall: dict[str, list[float]] = {}
    sizes: dict[str, list[int]] = {}
    startup = min(10, trials // 2)
    for seed in seeds:
        peers = {
            "sweeper (objectives:, TPE)": lambda s=seed: _sweeper(
                problem, folder, s, trials, epochs
            ),
            "Optuna NSGA-II": lambda s=seed: _optuna(
                problem,
                optuna.samplers.NSGAIISampler(seed=s, population_size=max(4, trials // 3)),
                trials,
                epochs,
            ),
            "Optuna multi-objective TPE": lambda s=seed: _optuna(
                problem,
                optuna.samplers.TPESampler(seed=s, multivariate=True, n_startup_trials=startup),
                trials,
                epochs,
            ),
            "Optuna random": lambda s=seed: _optuna(
                problem, optuna.samplers.RandomSampler(seed=s), trials, epochs
            ),
            "Ray Tune + OptunaSearch (TPE)": lambda s=seed: _tune(
                problem, folder, s, trials, epochs
            ),
        }
        for system, go in peers.items():
            front, seconds = go()
            hv.setdefault(system, []).append(_hypervolume(front, largest))
            wall.setdefault(system, []).append(seconds)
            sizes.setdefault(system, []).append(len(front))
    base_hv = statistics.mean(hv["sweeper (objectives:, TPE)"]) or 1.0
    base_wall = statistics.mean(wall["sweeper (objectives:, TPE)"]) or 1.0
    return [
        {
            "task": f"{problem.name} ({trials} x {epochs} ep)",
            "system": system,
            "hypervolume": mean_sd(hv[system]),
            "hv / sweeper's": round(statistics.mean(hv[system]) / base_hv, 3),
            "front size": round(statistics.mean(sizes[system]), 1),
            "wall s": mean_sd(wall[system]),
            "wall / sweeper's": round(statistics.mean(wall[system]) / base_wall, 3),
        }
        for system in hv
    ]


def run(quick: bool) -> dict[str, Any]:
    seeds = [0, 1] if quick else [0, 1, 2, 3, 4]
    problems = [MLP] if quick else [MLP, CNN]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for problem in problems:
            rows += _compare(problem, Path(tmp), seeds, quick)
    return {
        "rows": rows,
        "seeds": seeds,
        "budgets": {p.name: {"trials": p.trials, "epochs": p.epochs} for p in problems},
        "reference": "(1 - val_accuracy, params / largest) against (1, 1.1)",
    }
