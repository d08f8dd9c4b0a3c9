"""5. Gate cost: wall time of the study gate on the digits tasks, and per-trial probe overhead
as a share of trial time."""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from sweeper.examples.digits import cnn_task, mlp_task
from sweeper.probes import Context, TrialMonitor, run_gate, trial_start_checks
from sweeper.training import Data, evaluate, start_run, train_epoch

PARAMS = {"lr": 3e-3, "batch_size": 64, "dropout": 0.1, "init": "kaiming_normal"}


def _trial(task: Any, data: Data, epochs: int, probes: bool) -> float:
    t0 = time.perf_counter()
    device = torch.device("cpu")
    monitor = None
    if probes:
        trial_start_checks(Context(task, data, PARAMS, device, seed=1))
        monitor = TrialMonitor()
    run = start_run(task, data, PARAMS, device, seed=1)
    for _ in range(epochs):
        train_epoch(run, monitor)
        evaluate(run)
    return time.perf_counter() - t0


def run(quick: bool) -> dict[str, Any]:
    torch.set_num_threads(1)  # one trial = one CPU, as resources.cpus: 1 gives it
    reps = 1 if quick else 5
    epochs = 5 if quick else 20
    rows = []
    for name, make in (("digits MLP", mlp_task), ("digits CNN", cnn_task)):
        task = make()
        gate_s = statistics.median(run_gate(task, params=PARAMS).seconds for _ in range(reps))
        data = Data.of(task, torch.device("cpu"))
        on, off = [], []
        for _ in range(reps):  # alternate, so drift hits both alike
            off.append(_trial(task, data, epochs, probes=False))
            on.append(_trial(task, data, epochs, probes=True))
        t_on, t_off = statistics.median(on), statistics.median(off)
        rows.append(
            {
                "task": name,
                "gate_s": round(gate_s, 2),
                "trial_s_probes_off": round(t_off, 3),
                "trial_s_probes_on": round(t_on, 3),
                "probe_share": f"{(t_on - t_off) / t_on:.1%}",
            }
        )
    return {"epochs": epochs, "repeats": reps, "rows": rows}
