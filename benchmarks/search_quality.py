"""3. Search quality: best validation accuracy after 10, 20, 40 trials, TPE vs random search on
the digits CNN, over several seeds; and TPE on a window of the study (`sampler: {window: N}`,
N half the study), to show what bounding TPE's reading costs in best value."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from benchmarks._common import mean_sd, run_sweeper


def _best_after(store: str, name: str, marks: list[int]) -> dict[int, float | None]:
    trials = optuna.load_study(study_name=name, storage=store).get_trials(deepcopy=False)
    out: dict[int, float | None] = {}
    for n in marks:
        done = [t.values[0] for t in trials[:n] if t.state == TrialState.COMPLETE]
        out[n] = max(done) if done else None
    return out


def run(quick: bool) -> dict[str, Any]:
    seeds = [0, 1] if quick else [0, 1, 2, 3, 4]
    marks = [3, 6] if quick else [10, 20, 40]
    epochs = 1 if quick else 3
    results: dict[str, dict[int, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        window = marks[-1] // 2 if not quick else 20  # the smallest window allowed is 20
        for sampler, kind, extra in (
            ("tpe", "tpe", ""),
            ("random", "random", ""),
            (f"tpe, window {window}", "tpe", f", window: {window}"),
        ):
            results[sampler] = {n: [] for n in marks}
            for seed in seeds:
                name = f"quality-{kind}{extra and '-window'}-{seed}"
                store = f"sqlite:///{Path(tmp) / name}.db"
                run_sweeper(f"""
                    name: {name}
                    task: sweeper.examples.digits:cnn_task
                    storage: {store}
                    budget: {{trials: {marks[-1]}, epochs: {epochs}}}
                    search:
                      lr: {{type: float, low: 1.0e-4, high: 1.0e-1, log: true}}
                      batch_size: {{type: categorical, choices: [32, 64, 128]}}
                      dropout: {{type: float, low: 0.0, high: 0.5}}
                      init:
                        type: categorical
                        choices: [default, kaiming_normal, xavier_uniform]
                      channels: {{type: categorical, choices: [4, 8, 16]}}
                      optimizer: {{type: categorical, choices: [adam, sgd]}}
                    sampler: {{type: {kind}, seed: {seed}, startup_trials: 10{extra}}}
                    pruner: {{type: none}}
                    probes: {{gate: "off", trial: true}}
                    resources: {{cpus: 1, max_concurrent: 2}}
                """)
                for n, v in _best_after(store, name, marks).items():
                    if v is not None:
                        results[sampler][n].append(v)
    rows = [
        {"sampler": s, **{f"after_{n}": mean_sd(vals) for n, vals in by_n.items()}}
        for s, by_n in results.items()
    ]
    return {"seeds": seeds, "epochs": epochs, "marks": marks, "rows": rows, "raw": results}
