"""7. Checkpoint cost and what a resume saves, on the digits CNN, through the real runner.

Cost: the same trial (20 epochs) with checkpoints every 5 epochs and with none, interleaved
in one process, several times; the share is the difference of medians over the epoch time,
and, more precisely, the seconds spent inside the checkpoint writes (timed by the Saver).
Saving: a trial killed after epoch 15 of 20, re-run from its epoch-15 checkpoint, against the
same trial re-run from epoch 0 (what sweeper did before checkpoints)."""

from __future__ import annotations

import statistics
import tempfile
import time
from typing import Any

TASK = "sweeper.examples.digits:cnn_task"
PARAMS = {"lr": 3e-3, "batch_size": 64, "dropout": 0.1, "init": "none"}


def _runner(folder: str | None, every: int) -> Any:
    from sweeper.orchestrator._runner import TrialRunner
    from sweeper.probes import Settings

    ck = None
    if folder is not None:
        ck = {"location": folder, "study": "bench", "every_epochs": every, "keep_weights": True}
    return TrialRunner(TASK, {}, [], Settings().model_dump(), True, 1, ck)


def _trial(runner: Any, number: int, epochs: int, resume: Any = None) -> tuple[float, float]:
    """Seconds of the whole trial, and of its checkpoint writes."""
    t0 = time.perf_counter()
    out = runner.start(number, PARAMS, epochs, True, resume)
    while out.metrics is not None:
        out = runner.epoch()
    seconds = time.perf_counter() - t0
    ck = runner.saver.seconds if runner.saver is not None else 0.0
    runner.finish()
    return seconds, ck


def run(quick: bool) -> dict[str, Any]:
    from sweeper.checkpoint import checkpoint_id

    epochs, every, repeats = (10, 5, 2) if quick else (20, 5, 5)
    with tempfile.TemporaryDirectory() as folder:
        plain, checked = _runner(None, 0), _runner(folder, every)
        _trial(plain, 0, 2)  # warm-up: data on the device, first-call costs
        _trial(checked, 0, 2)
        off: list[float] = []
        on: list[float] = []
        inside: list[float] = []
        for r in range(repeats):
            off.append(_trial(plain, 100 + r, epochs)[0])
            s, ck = _trial(checked, 100 + r, epochs)
            on.append(s)
            inside.append(ck)
        # a trial killed after epoch `cut`: re-run from its checkpoint vs from epoch 0
        cut = epochs - every
        resume = {
            "trial": 100,
            "checkpoints": [{"id": checkpoint_id("bench", 100, cut), "epoch": cut}],
        }
        resumed = statistics.median(_trial(checked, 200 + r, epochs, resume)[0] for r in range(2))
        fresh = statistics.median(off)
    base = statistics.median(off)
    per_epoch = base / epochs
    writes = epochs // every - (1 if epochs % every == 0 else 0)
    rows = [
        {
            "epochs": epochs,
            "every": every,
            "no checkpoints s": round(base, 2),
            "checkpoints s": round(statistics.median(on), 2),
            "share by difference": f"{100 * (statistics.median(on) - base) / base:+.1f}%",
            "share timed inside": f"{100 * statistics.median(inside) / base:.2f}%",
            "per checkpoint ms": round(1000 * statistics.median(inside) / max(1, writes), 1),
            "killed after": cut,
            "re-run from 0 s": round(fresh, 2),
            "resumed s": round(resumed, 2),
            "saved s": round(fresh - resumed, 2),
            "epoch s": round(per_epoch, 3),
        }
    ]
    return {"rows": rows}
