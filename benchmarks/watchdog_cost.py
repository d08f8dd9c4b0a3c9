"""12. Watchdog cost: a whole trial with the runner's watchdog armed (a beat at every optimizer
step through the global step hook, at every forward of the watched model and at each
`trial.step` / `report`; its thread asleep until the bound could pass) against the same trial
with no watchdog at all (no hook, no thread). sweeper's own loop and a user's own `fit`; runs
alternate, one thread, median of the repeats."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks._common import paired
from sweeper import _watchdog as watchdog
from sweeper.examples.digits import cnn_task, mlp_task
from sweeper.examples.own_loop import own_loop_task
from sweeper.probes import REFERENCE_PARAMS
from sweeper.training import Data, Trial, builtin_fit

FIT_PARAMS = {"lr": 0.03, "batch_size": 64, "dropout": 0.1, "max_shift": 1}


def _trial(task: Any, data: Data | None, epochs: int, dog: watchdog.Watchdog | None) -> float:
    """Seconds of one trial, watched by `dog` (armed) or by nothing."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    own = task.fit is not None
    params = FIT_PARAMS if own else dict(REFERENCE_PARAMS, dropout=0.1, batch_size=32)
    fit = task.fit if own else builtin_fit(task, data)
    watchdog._WATCHDOG = dog  # what beat() and Trial.watch see
    hook = register_optimizer_step_post_hook(lambda *_: watchdog.beat()) if dog else None
    if dog is not None:
        dog.arm("trial 1")
    trial = Trial(params, 1, torch.device("cpu"), epochs, checks=False)
    torch.manual_seed(1)
    t0 = time.perf_counter()
    try:
        fit(params, trial)
    finally:
        trial.close()
        if hook is not None:
            hook.remove()
        if dog is not None:
            dog.disarm()
        watchdog._WATCHDOG = None
    return time.perf_counter() - t0


def run(quick: bool) -> dict[str, Any]:
    torch.set_num_threads(1)
    reps = 1 if quick else 11
    epochs = 2 if quick else 12
    folder = Path(tempfile.mkdtemp(prefix="sweeper-bench-watchdog-"))
    # a huge floor: the benchmark measures the cost, it must never fire
    dog = watchdog.Watchdog(folder / "dump.txt", floor_s=1e6, factor=20.0, faults=False)
    rows = []
    try:
        for name, make in [
            ("digits MLP, sweeper's loop", mlp_task),
            ("digits CNN (BatchNorm), sweeper's loop", cnn_task),
            ("own fit loop (CNN + augmentation)", own_loop_task),
        ]:
            task = make()
            data = None if task.fit is not None else Data.of(task, torch.device("cpu"))
            _trial(task, data, 1, dog)  # warm-up
            t_off, t_on, _ = paired(
                lambda on, t=task, d=data: (_trial(t, d, epochs, dog if on else None), 0.0), reps
            )
            rows.append(
                {
                    "trial": name,
                    "s_without": round(t_off, 3),
                    "s_watchdog": round(t_on, 3),
                    "ratio": round(t_on / t_off, 3),
                }
            )
        # one beat alone: what each step, watched forward and report adds
        watchdog._WATCHDOG = dog
        dog.arm("beats")
        n = 200_000 if not quick else 20_000
        t0 = time.perf_counter()
        for _ in range(n):
            watchdog.beat()
        rows.append(
            {
                "trial": "one beat (armed)",
                "ns_per_beat": round(1e9 * (time.perf_counter() - t0) / n),
            }
        )
    finally:
        dog.disarm()
        watchdog._WATCHDOG = None
        dog.close()
    return {"epochs": epochs, "repeats": reps, "rows": rows}
