"""8. Chaos soak: a long study under many random kills of the driver and of Ray workers, on
SQLite and on PostgreSQL, with the suite's chaos harness (tests/orchestrator_tests/chaos.py).

Reported per store: kills survived (by target and phase), trials lost (must be 0: every
finished trial kept unchanged, the exact budget finished, nothing RUNNING or WAITING), how long
each worker kill took until two trials ran at once again, and the concurrency over the whole
study (share of wall time with 2, 1 and 0 trials running, from the trials' times in the store).
"""

from __future__ import annotations

import statistics
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks._common import postgres_db

SEED = 2026
FULL = {"trials": 200, "epochs": 8, "kills": 44, "driver_kills": 8}
QUICK = {"trials": 8, "epochs": 6, "kills": 3, "driver_kills": 1}


def _soak(store: str, url: str, size: dict[str, int], folder: Path) -> dict[str, Any]:
    from tests.orchestrator_tests import chaos

    name = f"soak-{store}"
    definition = chaos.write(folder, name, url, trials=size["trials"], epochs=size["epochs"])
    report = chaos.run(
        folder,
        definition,
        url,
        name,
        budget=size["trials"],
        seed=SEED,
        kills=size["kills"],
        driver_kills=size["driver_kills"],
        log=lambda msg: print(f"  [{store}] {msg}", flush=True),
    )
    by = Counter(f"{k.target}@{k.phase}" for k in report.kills)
    restored = [k.restored_s for k in report.kills if k.restored_s is not None]
    done = [t for t in report.trials if t.state.name in ("COMPLETE", "PRUNED")]
    timeline = chaos.concurrency_over_time(done, step=0.5)  # driver restarts count as 0
    share = {n: timeline.count(n) / max(1, len(timeline)) for n in (0, 1, 2)}
    finished = len([t for t in report.trials if t.state.name in ("COMPLETE", "PRUNED")])
    failed = len([t for t in report.trials if t.state.name == "FAIL"])
    return {
        "store": store,
        "trials": f"{finished}/{size['trials']} finished, {failed} failed (re-run)",
        "kills": len(report.kills),
        "driver kills": sum(v for k, v in by.items() if k.startswith("driver")),
        "phases": ", ".join(f"{k} {v}" for k, v in sorted(by.items())),
        "runs": report.runs,
        # a trial is lost when the budget is short or a finished trial changed or vanished
        "lost": size["trials"]
        - finished
        + sum(p.startswith("finished trial") for p in report.problems),
        "restore median s": round(statistics.median(restored), 1) if restored else None,
        "restore max s": round(max(restored), 1) if restored else None,
        "time at 2/1/0 running": "/".join(f"{share[n]:.0%}" for n in (2, 1, 0)),
        "wall s": round(report.seconds),
        "problems": "; ".join(report.problems)[:500] or "none",
    }


def run(quick: bool) -> dict[str, Any]:
    size = QUICK if quick else FULL
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "sqlite"
        folder.mkdir()
        rows.append(_soak("sqlite", f"sqlite:///{folder / 'sweeps.db'}", size, folder))
        if not quick:
            import psycopg

            folder = Path(tmp) / "pg"
            folder.mkdir()
            try:
                with postgres_db("sweeper_soak") as url:
                    rows.append(_soak("postgresql", url, size, folder))
            except psycopg.OperationalError as e:  # no server at SWEEPER_BENCH_PG
                rows.append({**{k: None for k in rows[0]}, "store": f"postgresql: {e}"})
    return {"rows": rows, "size": size, "seed": SEED}
