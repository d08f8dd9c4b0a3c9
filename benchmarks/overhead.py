"""1. Orchestration overhead: the same objective, N trials, 2 at a time, three ways."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

from benchmarks._common import burn, calibrate, run_sweeper

CONCURRENCY = 2


def _sampler() -> optuna.samplers.TPESampler:
    # the sampler sweeper builds for `sampler: {type: tpe, seed: 0, startup_trials: 10}`
    return optuna.samplers.TPESampler(
        seed=0, n_startup_trials=10, multivariate=True, constant_liar=True
    )


def sweeper_run(folder: Path, trials: int, iters: int) -> float:
    t0 = time.perf_counter()
    run_sweeper(f"""
        name: overhead-{iters}-{trials}
        task: benchmarks._common:burn_task
        task_args: {{iters: {iters}}}
        storage: sqlite:///{folder}/sweeper.db
        objective: {{metric: val_loss}}
        budget: {{trials: {trials}, epochs: 1, max_consecutive_failures: 1000}}
        search:
          lr: {{type: float, low: 1.0e-4, high: 1.0e-1, log: true}}
          batch_size: 8
          dropout: 0.0
          init: default
        sampler: {{type: tpe, seed: 0, startup_trials: 10}}
        pruner: {{type: none}}
        probes: {{gate: "off", trial: false}}
        resources: {{cpus: 1, max_concurrent: {CONCURRENCY}}}
    """)
    return time.perf_counter() - t0


def optuna_run(folder: Path, trials: int, iters: int) -> float:
    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        burn(iters)
        return lr

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    study = optuna.create_study(storage=f"sqlite:///{folder}/optuna.db", sampler=_sampler())
    study.optimize(objective, n_trials=trials, n_jobs=CONCURRENCY)
    return time.perf_counter() - t0


def _tune_trainable(config: dict[str, Any]) -> None:
    from ray import tune

    burn(config["iters"])
    tune.report({"loss": config["lr"]})


def tune_run(folder: Path, trials: int, iters: int) -> float:
    from optuna.distributions import FloatDistribution
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    search = OptunaSearch(
        space={"lr": FloatDistribution(1e-4, 1e-1, log=True)},
        metric="loss",
        mode="min",
        sampler=_sampler(),
    )
    t0 = time.perf_counter()
    tuner = tune.Tuner(
        tune.with_resources(lambda cfg: _tune_trainable({**cfg, "iters": iters}), {"cpu": 1}),
        # reuse_actors: Tune's own setting for many short trials (its default starts a new
        # worker process per trial, about 4 s each here); the peer at its best
        tune_config=tune.TuneConfig(
            search_alg=search,
            num_samples=trials,
            max_concurrent_trials=CONCURRENCY,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(storage_path=str(folder / "tune"), name="bench", verbose=0),
    )
    tuner.fit()
    return time.perf_counter() - t0


def run(quick: bool) -> dict[str, Any]:
    trials = 10 if quick else 200
    big = 40 if quick else 1000
    work_s = 0.2 if quick else 1.0
    iters, measured = calibrate(work_s)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, n_iters, per in (("~1 s CPU work", iters, measured), ("no-op", 0, 0.0)):
            if quick:
                label = label.replace("~1 s", f"~{work_s:g} s")
            for system, fn in (
                ("sweeper", sweeper_run),
                ("Ray Tune + OptunaSearch", tune_run),
                ("optuna.optimize(n_jobs=2)", optuna_run),
            ):
                folder = Path(tmp) / f"{system[:6]}-{n_iters}"
                folder.mkdir()
                wall = fn(folder, trials, n_iters)
                rows.append(_row(system, label, trials, wall, per))
        folder = Path(tmp) / "big"
        folder.mkdir()
        rows.append(_row("sweeper", "no-op", big, sweeper_run(folder, big, 0), 0.0))
    return {"work_seconds": measured, "work_iters": iters, "rows": rows}


def _row(system: str, work: str, trials: int, wall: float, per: float) -> dict[str, Any]:
    ideal = trials * per / CONCURRENCY
    return {
        "system": system,
        "objective": work,
        "trials": trials,
        "wall_s": round(wall, 2),
        "ideal_s": round(ideal, 2),
        "efficiency": round(ideal / wall, 3) if per else None,
        # slot time per trial not spent in the objective (wall x concurrency - work) / trials
        "overhead_ms_per_trial": round((wall * CONCURRENCY - trials * per) / trials * 1000, 1),
    }
