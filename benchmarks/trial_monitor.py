"""10. Trial monitor overhead: what watching a whole trial costs (sampled forward hooks, optimizer
step hooks, the per-step gradient finiteness check, the reported-metric checks), as a share of
trial time, in sweeper's own loop, in a user's own `fit` and under Lightning's Trainer (through
`SweeperCallback`, which reports in both runs: only the probes differ). The monitor alone: no start
checks, no gate. Trials with and without it alternate, one thread, median of the repeats."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from benchmarks._common import paired
from sweeper.examples.digits import cnn_task, mlp_task
from sweeper.examples.own_loop import own_loop_task
from sweeper.probes import REFERENCE_PARAMS, TrialMonitor
from sweeper.training import Data, Trial, builtin_fit

FIT_PARAMS = {"lr": 0.03, "batch_size": 64, "dropout": 0.1, "max_shift": 1}
LIGHTNING_PARAMS = {"lr": 3e-3, "batch_size": 64, "dropout": 0.1, "hidden": 64}


def _lightning() -> Any:
    try:
        from sweeper.examples.lightning_digits import lightning_digits_task
    except ImportError:  # lightning missing: pip install -e ".[dev]" or ".[lightning]"
        return None
    return lightning_digits_task()


def _corpus(name: str) -> Callable[[], Any] | None:
    try:
        from tests.probes_tests import corpus
    except ImportError:  # transformers missing: pip install -e ".[dev]"
        return None
    return getattr(corpus, name)


def _trial(task: Any, data: Data | None, epochs: int, watched: bool) -> tuple[float, float]:
    """(trial seconds, seconds inside the monitor: hooks and checks, timed where they run)."""
    own = task.fit is not None
    params = FIT_PARAMS if own else dict(REFERENCE_PARAMS, dropout=0.1)
    if task.build_model is not None and "Lit" in getattr(task.build_model, "__name__", ""):
        params = LIGHTNING_PARAMS
    monitor = TrialMonitor(first_forward=own, epochs=epochs, own_loop=own) if watched else None
    fit = task.fit if own else builtin_fit(task, data)
    trial = Trial(params, 1, torch.device("cpu"), epochs, monitor=monitor, checks=False)
    torch.manual_seed(1)
    t0 = time.perf_counter()
    fit(params, trial)
    trial.close()
    return time.perf_counter() - t0, monitor.seconds if monitor else 0.0


def run(quick: bool) -> dict[str, Any]:
    torch.set_num_threads(1)  # one trial = one CPU, as resources.cpus: 1 gives it
    reps = 1 if quick else 5
    epochs = 2 if quick else 8
    cases: list[tuple[str, Callable[[], Any] | None]] = [
        ("digits MLP, sweeper's loop", mlp_task),
        ("digits CNN (BatchNorm), sweeper's loop", cnn_task),
        ("own fit loop (CNN + augmentation)", own_loop_task),
        ("GPT-2 decoder (transformers), sweeper's loop", _corpus("gpt2_decoder")),
        ("LSTM LM (word-level), sweeper's loop", _corpus("lstm_language_model")),
        ("Lightning Trainer (digits MLP, SweeperCallback)", _lightning),
    ]
    rows = []
    for name, make in cases[:3] if quick else cases:
        if make is None:
            rows.append({"trial": name, "note": "transformers not installed"})
            continue
        task = make()
        if task is None:
            rows.append({"trial": name, "note": "lightning not installed"})
            continue
        data = None if task.fit is not None else Data.of(task, torch.device("cpu"))
        _trial(task, data, 1, watched=True)  # warm-up: imports, allocator
        t_off, t_on, inside = paired(
            lambda on, t=task, d=data: _trial(t, d, epochs, watched=on), reps
        )
        rows.append(
            {
                "trial": name,
                "s_unwatched": round(t_off, 3),
                "s_watched": round(t_on, 3),
                "ratio": round(t_on / t_off, 3),
                "share_timed_inside": f"{inside:.1%}",
            }
        )
    return {"epochs": epochs, "repeats": reps, "rows": rows}
