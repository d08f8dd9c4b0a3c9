"""5. Gate cost: wall time of the study gate on the digits tasks, and per-trial probe overhead
as a share of trial time, in sweeper's own loop and in a user's own `fit` loop (the
own-loop example: digits CNN with augmentation, probes attached by `trial.watch`); then the
gate on every model of the healthy corpus (tests/probes_tests/corpus.py: real architectures)
against one optimizer step of the same model, so its cost reads in training steps."""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from benchmarks._common import paired
from sweeper.examples.digits import cnn_task, mlp_task
from sweeper.examples.own_loop import own_loop_task
from sweeper.probes import Context, TrialMonitor, run_gate, trial_start_checks
from sweeper.training import Data, Trial, builtin_fit

PARAMS = {"lr": 3e-3, "batch_size": 64, "dropout": 0.1, "init": "kaiming_normal"}
FIT_PARAMS = {"lr": 0.03, "batch_size": 64, "dropout": 0.1, "max_shift": 1}


def _trial(task: Any, data: Data | None, epochs: int, probes: bool) -> tuple[float, float]:
    """One trial as the runner runs it: start probes (own loop: none, its data are its own),
    then the trial's fit function with the monitor attached or not. Returns (trial seconds,
    seconds spent inside the probes, timed where they run)."""
    t0 = time.perf_counter()
    start_s = 0.0
    device = torch.device("cpu")
    monitor = None
    own = task.fit is not None
    params = FIT_PARAMS if own else PARAMS
    if probes:
        if not own:
            trial_start_checks(Context(task, data, params, device, seed=1))  # type: ignore[arg-type]
            start_s = time.perf_counter() - t0
        monitor = TrialMonitor(first_forward=own)
    fit = task.fit if own else builtin_fit(task, data)
    torch.manual_seed(1)
    fit(params, Trial(params, 1, device, epochs, monitor=monitor, checks=False))
    return time.perf_counter() - t0, start_s + (monitor.seconds if monitor else 0.0)


def run(quick: bool) -> dict[str, Any]:
    torch.set_num_threads(1)  # one trial = one CPU, as resources.cpus: 1 gives it
    reps = 1 if quick else 9
    epochs = 5 if quick else 20
    rows = []
    for name, make in (
        ("digits MLP", mlp_task),
        ("digits CNN", cnn_task),
        ("own fit loop (CNN + augmentation)", own_loop_task),
    ):
        task = make()
        gate_s = statistics.median(run_gate(task, params=PARAMS).seconds for _ in range(reps))
        data = Data.of(task, torch.device("cpu"))
        t_off, t_on, inside = paired(
            lambda on, t=task, d=data: _trial(t, d, epochs, probes=on), reps
        )
        rows.append(
            {
                "task": name,
                "gate_s": round(gate_s, 2),
                "trial_s_probes_off": round(t_off, 3),
                "trial_s_probes_on": round(t_on, 3),
                "probe_share_by_difference": f"{(t_on - t_off) / t_on:.1%}",
                "probe_share_timed_inside": f"{inside:.1%}",
            }
        )
    return {"epochs": epochs, "repeats": reps, "rows": rows, "corpus": corpus_rows(quick)}


def _step_seconds(task: Any, data: Data, steps: int = 5) -> float:
    """Seconds of one optimizer step of the gate's reference config (after a warm-up step)."""
    from sweeper.probes import REFERENCE_PARAMS
    from sweeper.training import start_run, train_epoch

    run_ = start_run(task, data, dict(REFERENCE_PARAMS), torch.device("cpu"), seed=0)
    train_epoch(run_, max_steps=1)
    t = time.perf_counter()
    train_epoch(run_, max_steps=steps)
    return (time.perf_counter() - t) / max(run_.steps - 1, 1)


def corpus_rows(quick: bool) -> list[dict[str, Any]]:
    """The gate's seconds on each corpus model beside one training step's: the gate's cost in
    steps (it is bounded in steps, about 300 of the reference config, whatever the model)."""
    try:
        from tests.probes_tests.corpus import CORPUS
    except ImportError as e:  # transformers missing: pip install -e ".[dev]"
        return [{"model": f"corpus unavailable: {e}"}]
    rows = []
    for make in CORPUS[:3] if quick else CORPUS:
        task = make()
        data = Data.of(task, torch.device("cpu"))
        report = run_gate(task, data=data)
        step = _step_seconds(task, data)
        rows.append(
            {
                "model": make.__name__,
                "gate_s": round(report.seconds, 2),
                "step_s": round(step, 4),
                "gate_in_steps": round(report.seconds / step),
                "verdict": report.verdict,
            }
        )
    return rows
