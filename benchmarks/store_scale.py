"""4. The store at scale: `sweeper best`, `sweeper status` and one TPE ask() on studies of 100,
1,000 and 10,000 finished trials, on SQLite and PostgreSQL; Optuna's own best_trial beside."""

from __future__ import annotations

import contextlib
import io
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from benchmarks._common import postgres_db
from sweeper.cli import main as sweeper_cli
from sweeper.export import top_configs
from sweeper.store import attrs, open_storage

DISTS = {
    "lr": FloatDistribution(1e-4, 1e-1, log=True),
    "dropout": FloatDistribution(0.0, 0.5),
    "init": CategoricalDistribution(["default", "kaiming_normal", "orthogonal"]),
}


def _grow(study: optuna.Study, n: int, rng: random.Random) -> None:
    """Add finished trials (complete, some pruned) through Optuna's API up to n in all."""
    new = []
    for _ in range(n - len(study.get_trials(deepcopy=False))):
        params = {
            "lr": 10 ** rng.uniform(-4, -1),
            "dropout": rng.uniform(0, 0.5),
            "init": rng.choice(["default", "kaiming_normal", "orthogonal"]),
        }
        pruned = rng.random() < 0.3
        new.append(
            create_trial(
                params=params,
                distributions=DISTS,
                value=None if pruned else rng.uniform(0.5, 0.99),
                state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
                intermediate_values={e: rng.uniform(0.3, 0.9) for e in range(5)},
                user_attrs={attrs.VERDICT: "pass", attrs.PROBE_SECONDS: 0.01},
            )
        )
    study.add_trials(new)


def _time(fn: Callable[[], Any], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _measure(url: str, name: str) -> dict[str, float]:
    def status() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            sweeper_cli(["status", name, "--storage", url, "--json"])

    def optuna_best() -> None:
        optuna.load_study(study_name=name, storage=url).best_trial  # noqa: B018

    def ask() -> None:
        sampler = optuna.samplers.TPESampler(seed=0, multivariate=True, constant_liar=True)
        study = optuna.load_study(study_name=name, storage=url, sampler=sampler)
        trial = study.ask(DISTS)
        study.tell(trial, state=TrialState.FAIL)

    read, first = _first_ask(url, name)
    return {
        "sweeper best": _time(lambda: top_configs(name, url, 1)),
        "sweeper status": _time(status),
        "TPE ask()": _time(ask, repeat=1),
        "sweeper first ask": read + first,
        "start-up read": read,
        "first ask after it": first,
        "TPE warm ask": _warm_ask(url, name, None),
        "warm ask, window 1000": _warm_ask(url, name, 1000),
        "optuna best_trial": _time(optuna_best),
    }


def _first_ask(url: str, name: str) -> tuple[float, float]:
    """A resumed driver's first ask, as `run` makes it: the study opened on sweeper's store
    (its bulk reader), read into the cache (the driver does that in a thread while its runners
    start), then asked through the study view. Returns (read s, ask s); the sum is the first
    ask of a driver with nothing to overlap the read with."""
    from sweeper.search._view import read_ahead, read_through

    sampler = optuna.samplers.TPESampler(seed=0, multivariate=True, constant_liar=True)
    study = optuna.load_study(study_name=name, storage=open_storage(url), sampler=sampler)
    t0 = time.perf_counter()
    read_ahead(study).join()
    t1 = time.perf_counter()
    read_through(study)
    trial = study.ask(DISTS)
    study.tell(trial, state=TrialState.FAIL)
    return t1 - t0, time.perf_counter() - t1


def _warm_ask(url: str, name: str, window: int | None) -> float:
    """One driver's ask + tell once the study is loaded (its first ask reads every trial):
    the median of 5, through the driver's study view, windowed or not."""
    from sweeper.search._view import read_through

    sampler = optuna.samplers.TPESampler(seed=0, multivariate=True, constant_liar=True)
    study = optuna.load_study(study_name=name, storage=open_storage(url), sampler=sampler)
    read_through(study, window=window)
    times = []
    for i in range(6):
        t0 = time.perf_counter()
        trial = study.ask(DISTS)
        study.tell(trial, state=TrialState.FAIL)
        if i:  # the first ask loads the study
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def run(quick: bool) -> dict[str, Any]:
    sizes = [100, 300] if quick else [100, 1000, 10000]
    rows = []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = contextlib.nullcontext(f"sqlite:///{Path(tmp) / 'scale.db'}")
        for backend, ctx in (("SQLite", sqlite), ("PostgreSQL", postgres_db("sweeper_bench"))):
            with ctx as url:
                # filling is not what is measured: commit without waiting for the disk
                fill_url = (
                    url + "?options=-c%20synchronous_commit%3Doff" if "postgres" in url else url
                )
                filler = open_storage(fill_url, heartbeat=False)
                study = optuna.create_study(
                    study_name="scale", storage=filler, direction="maximize"
                )
                study.set_metric_names(["val_accuracy"])
                rng = random.Random(0)
                for n in sizes:
                    t0 = time.perf_counter()
                    _grow(study, n, rng)
                    build = time.perf_counter() - t0
                    timings = _measure(url, "scale")
                    rows.append(
                        {"store": backend, "trials": n, "fill_s": round(build, 1)}
                        | {k: round(v * 1000, 1) for k, v in timings.items()}
                    )
                filler.engine.dispose()
    return {"unit": "ms (best of 3; ask once)", "rows": rows}
