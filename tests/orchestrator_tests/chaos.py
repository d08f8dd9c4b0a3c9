"""Chaos: kill the driver and the Ray workers of one study at seeded random moments, re-run the
command after each driver kill until it exits 0, and check what must survive any crash.

Used by the suite (`test_chaos.py`: a fixed seed, about 8 kills) and by the soak benchmark
(`benchmarks/chaos_soak.py`: 40+ kills over 200+ trials, SQLite and PostgreSQL).

A kill waits for its phase, read from the runners' process titles (Ray names a worker after
the call it runs): start-up (`TrialRunner.load`), the gate (`.gate`), mid-epoch (`.start`,
`.epoch`) and between epochs (the runner idle while the driver records an epoch), then sleeps
a random fraction of a second and sends SIGKILL. After a worker kill the next kill waits
until two trials started after it run at once again (the slot came back).
"""

from __future__ import annotations

import datetime
import os
import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from sweeper.orchestrator._leftovers import MARK
from tests.conftest import FINISHED, kill_group, slow_study, start_cli, trials_of

PHASES = ("load", "gate", "epoch", "between")
RANK = {p: i for i, p in enumerate(PHASES)}


@dataclass
class Kill:
    target: str  # "worker" or "driver"
    phase: str
    delay: float  # seconds after the phase is seen
    run: int = 0
    at: datetime.datetime | None = None
    hit: str = ""  # the victim's process title when it was killed
    restored_s: float | None = None  # worker kills: until two trials ran at once again


@dataclass
class Report:
    kills: list[Kill]
    runs: int
    outputs: list[str]
    codes: list[int]
    trials: list[Any]
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0


def schedule(seed: int, kills: int, driver_kills: int) -> list[list[Kill]]:
    """The kills of each driver run, in the order they happen. Start-up and the gate come
    once per run, so a run has at most one kill in them, first; a run whose driver is killed
    in them has no other kill. The driver kill ends its run; the last run has none."""
    rng = random.Random(seed)
    runs: list[list[Kill]] = [[] for _ in range(driver_kills + 1)]
    for i in range(driver_kills):
        runs[i].append(Kill("driver", rng.choice(PHASES), rng.uniform(0, 0.5)))

    def room(run: list[Kill], phase: str) -> bool:
        if any(k.target == "driver" and RANK[k.phase] < 2 for k in run):
            return False
        return RANK[phase] >= 2 or all(RANK[k.phase] >= 2 for k in run)

    for _ in range(kills - driver_kills):
        phase = rng.choices(PHASES, weights=(1, 1, 3, 2))[0]
        fits = [i for i, run in enumerate(runs) if room(run, phase)]
        if not fits:
            phase = rng.choice(PHASES[2:])
            fits = [i for i, run in enumerate(runs) if room(run, phase)]
        runs[rng.choice(fits)].append(Kill("worker", phase, rng.uniform(0, 0.3)))
    for run in runs:
        _order(run)
    return runs


def _order(run: list[Kill]) -> None:
    """Start-up and gate kills first, then epoch-time ones, the driver kill last."""
    run.sort(key=lambda k: (k.target == "driver", RANK[k.phase] >= 2))


def write(folder: Path, name: str, url: str, trials: int, epochs: int, front: bool = False) -> Path:
    """The study: the digits MLP slowed to about 0.1 s an epoch, two trials at a time, the
    gate on (so it can be hit), no pruning (so every trial has its epochs to be hit in).
    `front`: two objectives (val_accuracy, params) and a constraint, so what a kill may not
    lose is a front: every finished trial's values and its constraint."""
    several = (
        "objectives: [{metric: val_accuracy}, {metric: params}]\n"
        "constraints: [{metric: flops, max: 1.0e+6}]\n"
        if front
        else ""
    )
    return slow_study(folder, name, url, trials, epochs, delay=0.003, gate="warn", extra=several)


class _Drain(threading.Thread):
    """Reads a CLI's output as it comes, so a long run never blocks on a full pipe."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        super().__init__(daemon=True)
        self.proc, self.chunks = proc, []  # type: ignore[var-annotated]
        self.start()

    def run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.chunks.append(line)

    def text(self) -> str:
        self.join(timeout=30)
        return "".join(self.chunks)


def _runners(driver: int) -> list[tuple[Any, str]]:
    import psutil

    out = []
    try:
        procs = psutil.Process(driver).children(recursive=True)
    except psutil.Error:
        return []
    for p in procs:
        try:
            title = (p.cmdline() or [""])[0].strip()
        except psutil.Error:
            continue
        if title.startswith("ray::TrialRunner"):
            out.append((p, title))
    return out


def _in_phase(title: str, phase: str, searching: bool) -> bool:
    if phase == "load":
        return title in ("ray::TrialRunner.load", "ray::TrialRunner.__init__")
    if phase == "gate":
        return title in ("ray::TrialRunner.gate_start", "ray::TrialRunner.gate_poll")
    if phase == "epoch":
        return title in ("ray::TrialRunner.start", "ray::TrialRunner.epoch")
    return searching and title == "ray::TrialRunner"


def leftovers(pid: int) -> list[str]:
    """Processes still running that the local Ray of driver `pid` started."""
    import psutil

    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get(MARK, "").startswith(f"{pid}:"):
                found.append(f"{p.pid} {p.name()}")
        except (psutil.Error, OSError):
            continue
    return found


def _victim(
    proc: subprocess.Popen[str], phase: str, searching: bool, rng: random.Random, timeout: float
) -> tuple[tuple[Any, str] | None, bool]:
    """A runner in `phase` (any runner once `timeout` passed: the phase did not come), or None
    when the run ended first; and whether the search has begun."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        found = _runners(proc.pid)
        searching = searching or any(
            t in ("ray::TrialRunner.start", "ray::TrialRunner.epoch") for _, t in found
        )
        # a phase that is over (the search began) does not come back: a resumed study skips
        # a gate that passed, so waiting out the timeout would let a fast run end first
        over = searching and phase in ("load", "gate")
        late = over or time.monotonic() > deadline
        hits = [(p, t) for p, t in found if late or _in_phase(t, phase, searching)]
        if hits:
            return rng.choice(hits), searching
        time.sleep(0.003)
    return None, searching


def _restored(
    proc: subprocess.Popen[str], url: str, name: str, since: datetime.datetime, timeout: float
) -> float | None:
    """Seconds until two trials started after `since` run at once (None: not within
    `timeout`, or the run ended first)."""
    start = time.monotonic()
    while proc.poll() is None and time.monotonic() - start < timeout:
        try:
            running = [
                t
                for t in trials_of(url, name)
                if t.state == TrialState.RUNNING and t.datetime_start and t.datetime_start > since
            ]
        except KeyError:  # the study is not in the store yet
            running = []
        if len(running) >= 2:
            return time.monotonic() - start
        time.sleep(0.2)
    return None


def run(
    folder: Path,
    definition: Path,
    url: str,
    name: str,
    budget: int,
    seed: int,
    kills: int,
    driver_kills: int,
    phase_timeout: float = 30,
    log: Any = None,
) -> Report:
    """Run the study to the end under the kills; the report says what happened and which
    invariant, if any, broke (`problems`)."""
    plan = schedule(seed, kills, driver_kills)
    rng = random.Random(seed + 1)
    report = Report(kills=[], runs=0, outputs=[], codes=[], trials=[])
    kept: dict[int, tuple[Any, ...]] = {}
    killed_drivers: list[int] = []
    t0 = time.monotonic()
    say = log or (lambda _msg: None)
    for run_no in range(len(plan) + 20):
        todo = list(plan[run_no]) if run_no < len(plan) else []
        proc = start_cli("run", definition.name, "--plain", cwd=folder)
        drain = _Drain(proc)
        report.runs += 1
        searching = False
        try:
            while todo and proc.poll() is None:
                kill = todo[0]
                victim, searching = _victim(proc, kill.phase, searching, rng, phase_timeout)
                if victim is None:
                    break  # the run ended first; the kill moves to the next run
                time.sleep(kill.delay)
                todo.pop(0)
                kill.run, kill.at = run_no, datetime.datetime.now()
                kill.hit = victim[1]
                report.kills.append(kill)
                say(f"run {run_no}: kill {kill.target} in {kill.phase} ({kill.hit})")
                if kill.target == "driver":
                    os.kill(proc.pid, signal.SIGKILL)
                    killed_drivers.append(proc.pid)
                    break
                try:
                    victim[0].send_signal(signal.SIGKILL)
                except Exception:
                    pass
                kill.restored_s = _restored(proc, url, name, kill.at, phase_timeout)
            proc.wait(timeout=900)
        finally:
            if proc.poll() is None:
                kill_group(proc)
        if run_no + 1 < len(plan):  # kills this run did not reach move on
            plan[run_no + 1][:0] = [k for k in todo if k.target == "worker"]
            _order(plan[run_no + 1])
        out = drain.text()
        report.outputs.append(out)
        report.codes.append(proc.returncode)
        if "Traceback" in out:
            report.problems.append(f"run {run_no}: a traceback in the output")
        # a finished trial never changes, whatever was killed since
        try:
            now = {
                t.number: (t.state, t.values, t.params, t.system_attrs.get("constraints"))
                for t in trials_of(url, name)
                if t.state in FINISHED
            }
        except KeyError:  # killed before it made the study
            now = {}
        for number, before in kept.items():
            if now.get(number) != before:
                report.problems.append(
                    f"finished trial {number} changed: {before} -> {now.get(number)}"
                )
        kept.update(now)
        # the Ray processes of every driver killed before this run are gone once it ended
        for pid in killed_drivers[:-1] if proc.returncode == -signal.SIGKILL else killed_drivers:
            rest = leftovers(pid)
            if rest:
                report.problems.append(f"after run {run_no}: driver {pid} left {rest}")
        if proc.returncode == 0 and run_no + 1 >= len(plan):
            break
        if proc.returncode not in (0, -signal.SIGKILL):
            report.problems.append(f"run {run_no} exited {proc.returncode}:\n{out[-3000:]}")
            break
    report.seconds = time.monotonic() - t0
    report.trials = trials_of(url, name)
    _final(report, budget)
    for kill in report.kills:
        if (
            kill.target == "worker"
            and kill.restored_s is None
            and not _ended_soon(report, kill, phase_timeout)
        ):
            report.problems.append(
                f"concurrency not restored after the worker kill in {kill.phase} "
                f"at {kill.at:%H:%M:%S.%f} (run {kill.run})"
            )
    return report


def _ended_soon(report: Report, kill: Kill, budget_s: float) -> bool:
    """Whether the run ended (the study finished, or its driver was killed) before a revived
    worker could be back: no trial started more than `budget_s` after the kill."""
    assert kill.at is not None
    late = kill.at + datetime.timedelta(seconds=budget_s)
    nxt = [k.at for k in report.kills if k.at and k.at > kill.at and k.target == "driver"]
    end = min(nxt) if nxt else None
    return not any(
        t.datetime_start and t.datetime_start > late and (end is None or t.datetime_start < end)
        for t in report.trials
    )


def _final(report: Report, budget: int) -> None:
    trials = report.trials
    bad = [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    if bad:
        report.problems.append(f"trials left RUNNING or WAITING: {bad}")
    done = len([t for t in trials if t.state in FINISHED])
    if done != budget:
        report.problems.append(f"{done} finished trials, the budget is {budget}")
    for t in trials:
        if t.state == TrialState.FAIL and not t.user_attrs.get("sweeper:error"):
            report.problems.append(f"trial {t.number} failed with no reason")
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if any(len(t.values) > 1 for t in complete):  # a front: every member fully recorded
        for t in complete:
            if len(t.values) != 2 or "constraints" not in t.system_attrs:
                report.problems.append(
                    f"trial {t.number} of a front finished with values {t.values} and "
                    f"constraints {t.system_attrs.get('constraints')}"
                )


def concurrency_over_time(trials: list[Any], step: float = 1.0) -> list[int]:
    """Trials running at each `step` seconds from the first start to the last end."""
    spans = [
        (t.datetime_start, t.datetime_complete)
        for t in trials
        if t.datetime_start and t.datetime_complete
    ]
    if not spans:
        return []
    first, last = min(s for s, _ in spans), max(e for _, e in spans)
    n = int((last - first).total_seconds() / step) + 1
    out = []
    for i in range(n):
        at = first + datetime.timedelta(seconds=i * step)
        out.append(sum(1 for s, e in spans if s <= at < e))
    return out


def summary(report: Report) -> str:
    by = {}
    for k in report.kills:
        key = f"{k.target}@{k.phase}"
        by[key] = by.get(key, 0) + 1
    restored = [k.restored_s for k in report.kills if k.restored_s is not None]
    worst = f"{max(restored):.1f}" if restored else "-"
    return (
        f"{len(report.kills)} kills ({', '.join(f'{k} {v}' for k, v in sorted(by.items()))}) over "
        f"{report.runs} runs in {report.seconds:.0f}s; worst restore {worst}s; "
        f"problems: {report.problems or 'none'}"
    )
