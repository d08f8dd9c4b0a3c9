"""Shared by the comparisons: fixed CPU work, running a sweeper study in this process, tables."""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import torch

from sweeper.task import Task

_SIZE = 192
PG_SERVER = os.environ.get("SWEEPER_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


@contextlib.contextmanager
def postgres_db(prefix: str) -> Iterator[str]:
    """A fresh database on the PostgreSQL server at SWEEPER_BENCH_PG, dropped afterwards
    (psycopg.OperationalError when no server answers)."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = PG_SERVER.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def burn(iters: int) -> float:
    """A fixed amount of CPU work (float32 matmuls, one thread); returns its seconds."""
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    a = torch.ones(_SIZE, _SIZE) / _SIZE
    for _ in range(iters):
        a = a @ a + 1e-3
    return time.perf_counter() - t0


def calibrate(seconds: float) -> tuple[int, float]:
    """Iterations of `burn` that take about `seconds` here, and their measured time."""
    burn(20)
    per = min(burn(200) for _ in range(3)) / 200
    iters = max(1, round(seconds / per))
    return iters, statistics.median(burn(iters) for _ in range(3))


class Burn(torch.nn.Module):
    """A model whose training step does `iters` of `burn`: sweeper's form of the objective."""

    def __init__(self, iters: int) -> None:
        super().__init__()
        self.iters = iters
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.iters:
            burn(self.iters)
        return self.head(x)


def burn_task(iters: int = 0) -> Task:
    """Eight rows, one batch, one epoch: the trial's cost is the burn and nothing else."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 4, generator=g)
    y = torch.tensor([0, 1] * 4)
    return Task(
        build_model=lambda p: Burn(iters),
        train=(x, y),
        val=(x, y),
        loss="cross_entropy",
        kind="multiclass",
        num_classes=2,
    )


def run_sweeper(text: str, trials: int | None = None) -> Any:
    """Run a study definition (YAML text) with sweeper in this process; returns the Outcome."""
    from sweeper.definition import LoadedDefinition, parse_definition
    from sweeper.orchestrator import run_study

    text = textwrap.dedent(text)
    loaded = LoadedDefinition(spec=parse_definition(text), text=text, path=None)
    return run_study(loaded, progress=None, trials=trials)


def start_ray() -> None:
    """One local Ray for every comparison (sweeper and Ray Tune share it), 2 CPUs."""
    import os

    from sweeper.orchestrator._cluster import init_ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    init_ray(None, "benchmarks._common:burn_task", [os.getcwd()])


def mean_sd(values: list[float]) -> str:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "—"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def table(title: str, head: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(head)]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([f"### {title}", "", line(head), sep, *(line(r) for r in cells), ""])


def paired(run: Callable[[bool], tuple[float, float]], reps: int) -> tuple[float, float, float]:
    """`run(False)` and `run(True)` alternated `reps` times, so drift hits both alike; each
    returns (seconds, seconds spent inside what `True` adds). The medians of the off and on
    seconds, and of the inside share of the on runs."""
    on, off, inside = [], [], []
    for _ in range(reps):
        off.append(run(False)[0])
        t, inner = run(True)
        on.append(t)
        inside.append(inner / t)
    return statistics.median(off), statistics.median(on), statistics.median(inside)
