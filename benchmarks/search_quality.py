"""3. Search quality: best validation accuracy after 10, 20, 40 trials, TPE vs random search on
the digits CNN, over several seeds; and TPE on a window of the study (`sampler: {window: N}`,
N half the study), to show what bounding TPE's reading costs in best value. Then coarse-to-fine
`stages` against one-stage TPE at equal compute (trial-epochs), both confirmed over new seeds
(`confirm`), with the time the confirmation costs."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from benchmarks._common import mean_sd, run_sweeper

SPACE = """
search:
  lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
  batch_size: {type: categorical, choices: [32, 64, 128]}
  dropout: {type: float, low: 0.0, high: 0.5}
  init: {type: categorical, choices: [default, kaiming_normal, xavier_uniform]}
  channels: {type: categorical, choices: [4, 8, 16]}
  optimizer: {type: categorical, choices: [adam, sgd]}
"""


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
    staged = staged_vs_one_stage(quick)
    rows += staged["rows"]
    return {
        "seeds": seeds,
        "epochs": epochs,
        "marks": marks,
        "rows": rows,
        "raw": results,
        "staged": staged,
    }


def _spans(store: str, name: str) -> tuple[float, float, float | None, float | None]:
    """(search seconds, confirmation seconds, best single run of the last stage, the best
    configuration's mean over its new seeds), from the trials' own timestamps."""
    from sweeper.store import is_confirmation, study_ranking

    study = optuna.load_study(study_name=name, storage=store)
    trials = [t for t in study.get_trials(deepcopy=False) if t.datetime_complete is not None]
    search = [t for t in trials if not is_confirmation(t)]
    confirm = [t for t in trials if is_confirmation(t)]

    def span(ts: list[Any]) -> float:
        if not ts:
            return 0.0
        start = min(t.datetime_start for t in ts)
        return (max(t.datetime_complete for t in ts) - start).total_seconds()

    ranking = study_ranking(study)
    single = float(ranking.candidates[0].values[0]) if ranking.candidates else None
    best = ranking.best()
    confirmed = ranking.confirmed.get(best.number) if best is not None else None
    return span(search), span(confirm), single, confirmed.mean if confirmed else None


def staged_vs_one_stage(quick: bool) -> dict[str, Any]:
    """One-stage TPE against two stages (many short trials, then few long ones in the narrowed
    space) at the same trial-epochs, each followed by the same confirmation over new seeds."""
    seeds = [0] if quick else [0, 1, 2, 3, 4]
    if quick:
        plans = {
            "one stage": "budget: {trials: 4, epochs: 2}",
            "staged": "stages: [{trials: 4, epochs: 1, narrow: 0.5}, {trials: 2, epochs: 2}]",
        }
        confirm, startup = "confirm: {top: 1, seeds: 1}", 2
    else:
        plans = {
            "one stage, 16 x 6 epochs": "budget: {trials: 16, epochs: 6}",
            "staged, 24 x 2 then 8 x 6 epochs": (
                "stages: [{trials: 24, epochs: 2, narrow: 0.25}, {trials: 8, epochs: 6}]"
            ),
        }
        confirm, startup = "confirm: {top: 3, seeds: 2}", 8
    out: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, plan in plans.items():
            got = out.setdefault(label, {"single": [], "mean": [], "search_s": [], "confirm_s": []})
            for seed in seeds:
                name = f"staged-{len(out)}-{seed}"
                store = f"sqlite:///{Path(tmp) / name}.db"
                run_sweeper(
                    f"name: {name}\ntask: sweeper.examples.digits:cnn_task\nstorage: {store}\n"
                    f"{plan}\n{confirm}\n{SPACE}"
                    f"sampler: {{type: tpe, seed: {seed}, startup_trials: {startup}}}\n"
                    "pruner: {type: none}\nprobes: {gate: 'off', trial: true}\n"
                    "resources: {cpus: 1, max_concurrent: 2}\n"
                )
                search_s, confirm_s, single, mean = _spans(store, name)
                got["search_s"].append(search_s)
                got["confirm_s"].append(confirm_s)
                if single is not None:
                    got["single"].append(single)
                if mean is not None:
                    got["mean"].append(mean)
    rows = []
    for label, got in out.items():
        search_s, confirm_s = statistics.mean(got["search_s"]), statistics.mean(got["confirm_s"])
        rows.append(
            {
                "sampler": label,
                "best single run": mean_sd(got["single"]),
                "best config, mean of new seeds": mean_sd(got["mean"]),
                "search s": round(search_s, 1),
                "confirmation s": round(confirm_s, 1),
                "confirmation / search": round(confirm_s / search_s, 2) if search_s else None,
            }
        )
    return {"seeds": seeds, "plans": plans, "confirm": confirm, "rows": rows, "raw": out}
