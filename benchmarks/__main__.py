"""`python -m benchmarks [--quick] [--only NAME ...] [--out FILE]`: every comparison, side by
side in one process, printed as tables and written as JSON. Timings live here, never in tests."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._common import start_ray, table

COMPARISONS = {
    "overhead": "1. Orchestration overhead",
    "gate_savings": "2. What the gate saves",
    "search_quality": "3. Search quality (digits CNN)",
    "store_scale": "4. Store at scale",
    "gate_cost": "5. Gate cost",
    "door_fuzz": "6. Fuzzing the door (definitions)",
    "checkpoint_cost": "7. Checkpoint cost and resume savings (digits CNN)",
    "chaos_soak": "8. Chaos soak (random kills, SQLite and PostgreSQL)",
    "cluster_sim": "9. Simulated cluster (one driver, sleeping trials)",
    "trial_monitor": "10. Trial monitor overhead",
    "plots": "11. Gate plots: own SVG writer vs matplotlib",
    "watchdog_cost": "12. Watchdog cost (armed vs none)",
    "pareto": "13. Several objectives: the front of val_accuracy against params",
    "gate_epochs": "14. The gate in the user's own epochs (LM, ResNet, nanoGPT-style)",
}
NEEDS_RAY = {"overhead", "gate_savings", "search_quality", "pareto"}


def _machine() -> dict[str, Any]:
    import optuna
    import ray
    import torch

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ray": ray.__version__,
        "optuna": optuna.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke test (< 3 min)")
    p.add_argument("--only", nargs="+", choices=sorted(COMPARISONS), help="run just these")
    p.add_argument("--out", help="JSON file (default benchmarks/results[-quick].json)")
    args = p.parse_args(argv)
    names = args.only or list(COMPARISONS)
    out = Path(args.out or f"benchmarks/results{'-quick' if args.quick else ''}.json")
    # Ray workers (Ray Tune's trainables) import this package from the working directory
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])
    )
    from sweeper.store._storage import quiet_optuna

    quiet_optuna()
    report: dict[str, Any] = {
        "command": " ".join(["python -m benchmarks", *(argv or sys.argv[1:])]),
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": _machine(),
        "results": {},
    }
    t_all = time.perf_counter()
    for name in names:
        if name in NEEDS_RAY:
            start_ray()
        t0 = time.perf_counter()
        result = importlib.import_module(f"benchmarks.{name}").run(args.quick)
        result["seconds"] = round(time.perf_counter() - t0, 1)
        report["results"][name] = result
        rows = result["rows"]
        head = list(dict.fromkeys(k for r in rows for k in r))  # a row may lack a column
        print(
            table(
                f"{COMPARISONS[name]} ({result['seconds']}s)",
                head,
                [[r.get(k, "") for k in head] for r in rows],
            ),
            flush=True,
        )
        corpus = result.get("corpus")
        if corpus and len(corpus[0]) > 1:
            print(
                table(
                    "   the gate on the healthy corpus",
                    list(corpus[0]),
                    [list(r.values()) for r in corpus],
                ),
                flush=True,
            )
        out.write_text(json.dumps(report, indent=2, default=str))  # partial results survive
    report["seconds"] = round(time.perf_counter() - t_all, 1)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"all done in {report['seconds']}s; raw numbers in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
