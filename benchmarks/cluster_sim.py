"""9. A simulated cluster: one driver, many concurrent trials whose "training" sleeps.

Ray gets as many logical CPUs as there are slots, and each trial's `fit` sleeps a set time per
epoch, so the only real costs are sweeper's: the driver's ask, report, pruning decision and
tell, and Ray's round trips. Every run is sweeper's own `run_study` on an SQLite store, with
multivariate TPE (constant liar) and the median pruner, probes off.

- busy share = the slot time spent sleeping ÷ (slots × the time from the first trial's start to
  the last trial's start, from the store), over that steady-state span in which every slot has
  work: what is not busy is waiting on the driver or on Ray. "busy incl. tail" runs to the last
  trial's end, so it also counts slots left idle because the budget had no trial left to give.
- events/s = (epochs reported + trials asked) ÷ that wall time: what the driver sustained.
- "in study" = finished trials already in the study before the run (TPE reads them all).
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks.store_scale import _grow
from sweeper.task import Task

EPOCHS = 4
RUNNER_MB = 300  # a runner process with torch imported, as measured here (max RSS 270 MB)


def sleep_task(epoch_s: float = 0.5) -> Task:
    """A task that trains by sleeping: `epoch_s` per epoch, then a loss that depends on lr."""

    def fit(params: dict[str, Any], trial: Any) -> None:
        for epoch in range(trial.start_epoch, trial.epochs):
            time.sleep(epoch_s)
            trial.report({"val_loss": abs(params["lr"] - 0.01) + 1.0 / (epoch + 1)})

    return Task(fit=fit, kind="regression", loss="mse")


def _definition(name: str, db: Path, slots: int, trials: int, epoch_s: float) -> str:
    return f"""
        name: {name}
        task: benchmarks.cluster_sim:sleep_task
        task_args: {{epoch_s: {epoch_s}}}
        storage: sqlite:///{db}
        objective: {{metric: val_loss, direction: minimize}}
        budget: {{trials: {trials}, epochs: {EPOCHS}, max_consecutive_failures: 1000}}
        search:
          lr: {{type: float, low: 1.0e-4, high: 1.0e-1, log: true}}
          dropout: {{type: float, low: 0.0, high: 0.5}}
          init: {{type: categorical, choices: [default, kaiming_normal, orthogonal]}}
          batch_size: 32
        sampler: {{type: tpe, seed: 0}}
        pruner: {{type: median, startup_trials: 5, warmup_epochs: 1}}
        probes: {{gate: "off", trial: false}}
        checkpoint: {{every_epochs: 0, keep_best: 0}}
        resources: {{cpus: 1, max_concurrent: {slots}}}
    """


def _one(folder: Path, slots: int, epoch_s: float, in_study: int, new: int) -> dict[str, Any]:
    import textwrap

    import optuna
    from optuna.trial import TrialState

    from sweeper.definition import LoadedDefinition, parse_definition
    from sweeper.orchestrator import open_study, run_study
    from sweeper.store import open_storage

    name = f"sim-{slots}-{epoch_s:g}-{in_study}"
    db = folder / f"{name}.db"
    text = textwrap.dedent(_definition(name, db, slots, in_study + new, epoch_s))
    loaded = LoadedDefinition(spec=parse_definition(text), text=text, path=None)
    storage = open_storage(loaded.spec.storage)
    t_fill = time.perf_counter()
    study = open_study(loaded, storage)  # sweeper's own study, then grown with finished trials
    _grow(study, in_study, random.Random(0))
    fill_s = time.perf_counter() - t_fill
    t0 = time.perf_counter()
    run_study(loaded, progress=None)  # the budget counts the whole study, as `sweeper run`
    total_s = time.perf_counter() - t0
    study = optuna.load_study(study_name=name, storage=loaded.spec.storage)
    ran = [t for t in study.get_trials(deepcopy=False) if t.number >= in_study]
    ended = [t for t in ran if t.datetime_complete is not None]
    start = min(t.datetime_start for t in ran if t.datetime_start is not None)
    end = max(t.datetime_complete for t in ended)  # type: ignore[type-var]
    wall = (end - start).total_seconds()
    epochs = sum(len(t.intermediate_values) for t in ended)
    busy = epochs * epoch_s / (slots * wall)
    # steady state: until the last trial starts, every slot should be busy; a trial's busy
    # seconds are spread evenly over its run, the part inside the window counted
    last = max(t.datetime_start for t in ended)  # type: ignore[type-var]
    span = (last - start).total_seconds()
    inside = 0.0
    for t in ended:
        run = (t.datetime_complete - t.datetime_start).total_seconds()  # type: ignore[operator]
        overlap = (min(t.datetime_complete, last) - t.datetime_start).total_seconds()  # type: ignore[type-var, operator]
        if run > 0 and overlap > 0:
            inside += len(t.intermediate_values) * epoch_s * overlap / run
    steady = inside / (slots * span) if span > 0 else float("nan")
    failed = sum(t.state == TrialState.FAIL for t in ran)
    return {
        "slots": slots,
        "epoch s": epoch_s,
        "in study": in_study,
        "trials": len(ended),
        "failed": failed,
        "search wall s": round(wall, 1),
        "busy share": round(steady, 3),
        "busy incl. tail": round(busy, 3),
        "events/s": round((epochs + len(ended)) / wall, 1),
        "start-up s": round(total_s - wall, 1),
        "fill s": round(fill_s, 1),
    }


def _fits(slots: int) -> bool:
    """Whether `slots` runner processes fit in this machine's free memory (with a margin)."""
    return slots * RUNNER_MB < 0.85 * psutil.virtual_memory().available / 2**20


def run(quick: bool) -> dict[str, Any]:
    import ray

    if quick:
        grid = [(4, 0.2, 20)]
        depth = [(4, 0.2, n) for n in (50,)]
        waves = 2
    else:
        grid = [(s, e, 100) for e in (0.5, 5.0) for s in (8, 32, 100)]
        depth = [(32, 0.5, n) for n in (1000, 10000)]
        waves = 3
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for slots, epoch_s, in_study in grid + depth:
            if not _fits(slots):
                skipped.append(
                    f"{slots} slots: {slots} runner processes x ~{RUNNER_MB} MB do not fit in "
                    f"{psutil.virtual_memory().available / 2**30:.0f} GiB free"
                )
                continue
            if ray.is_initialized():
                ray.shutdown()
            ray.init(num_cpus=slots, include_dashboard=False, logging_level="ERROR")
            rows.append(_one(Path(tmp), slots, epoch_s, in_study, waves * slots))
        if ray.is_initialized():
            ray.shutdown()
    return {"rows": rows, "skipped": skipped, "epochs": EPOCHS}
