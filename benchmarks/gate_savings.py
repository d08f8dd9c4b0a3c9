"""2. What the gate saves: a careless, wide search on the digits MLP, sweeper's probes on/off."""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from benchmarks._common import run_sweeper

CHANCE = 0.2  # 10 classes: a trial ending at or below this learned nothing


def _definition(name: str, store: str, trials: int, epochs: int, probes: bool) -> str:
    gate = "{gate: warn, trial: true}" if probes else '{gate: "off", trial: false}'
    return f"""
        name: {name}
        task: sweeper.examples.digits:mlp_task
        storage: {store}
        budget: {{trials: {trials}, epochs: {epochs}, max_consecutive_failures: 1000}}
        search:
          lr: {{type: float, low: 1.0e-5, high: 10.0, log: true}}
          batch_size: {{type: categorical, choices: [32, 64, 128]}}
          dropout: {{type: float, low: 0.0, high: 0.9}}
          init: {{type: categorical, choices: [default, kaiming_normal, zeros, normal]}}
          hidden: 128
        sampler: {{type: tpe, seed: 0, startup_trials: 10}}
        pruner: {{type: median, warmup_epochs: {min(2, epochs - 1)}, startup_trials: 5}}
        probes: {gate}
        resources: {{cpus: 1, max_concurrent: 2}}
    """


def _seconds(t: FrozenTrial) -> float:
    if t.datetime_start is None or t.datetime_complete is None:
        return 0.0
    return (t.datetime_complete - t.datetime_start).total_seconds()


def _broken(t: FrozenTrial) -> bool:
    """Ended diverged (stopped by a probe, failed, non-finite) or at chance."""
    if t.state == TrialState.FAIL or "sweeper:seconds_saved" in t.user_attrs:
        return True
    last = t.values[0] if t.values else None
    if last is None and t.intermediate_values:
        last = t.intermediate_values[max(t.intermediate_values)]
    return last is None or not last == last or last <= CHANCE


def one(folder: Path, probes: bool, trials: int, epochs: int) -> dict[str, Any]:
    name = f"careless-{'on' if probes else 'off'}"
    store = f"sqlite:///{folder}/{name}.db"
    start = dt.datetime.now()
    t0 = time.perf_counter()
    run_sweeper(_definition(name, store, trials, epochs, probes))
    wall = time.perf_counter() - t0
    trials_ = optuna.load_study(study_name=name, storage=store).get_trials(deepcopy=False)
    broken = [t for t in trials_ if _broken(t)]
    done = [t for t in trials_ if t.state == TrialState.COMPLETE]
    best = max((t.values[0] for t in done), default=None)
    reached = [
        (t.datetime_complete - start).total_seconds()
        for t in done
        if t.values[0] >= 0.95 and t.datetime_complete
    ]
    return {
        "per_trial_probes": "on (gate + lr cap + trial probes)" if probes else "off",
        "trials": len(trials_),
        "broken_trials": len(broken),
        "trial_s_on_broken": round(sum(_seconds(t) for t in broken), 1),
        "trial_s_total": round(sum(_seconds(t) for t in trials_), 1),
        "best_val_accuracy": round(best, 4) if best is not None else None,
        "s_to_first_0.95": round(min(reached), 1) if reached else None,
        "wall_s": round(wall, 1),
    }


def run(quick: bool) -> dict[str, Any]:
    trials, epochs = (6, 2) if quick else (40, 10)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [one(Path(tmp), probes, trials, epochs) for probes in (True, False)]
    return {"trials": trials, "epochs": epochs, "rows": rows}
