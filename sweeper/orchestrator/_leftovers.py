"""Ray processes that a killed local driver left behind.

A local run starts its own Ray (GCS, raylet, agents, workers), and every one of those processes
inherits the driver's environment, where sweeper writes `SWEEPER_LOCAL_RAY=<pid>:<start time>`
before `ray.init`. A driver killed with SIGKILL cannot stop them: the raylet and its workers go
at once, but Ray's agents outlive it by a minute or two, holding memory. The next local run
ends every process whose mark names a driver that no longer runs. Processes of a driver that
still runs (another study on this machine) and processes of other users are never touched.
"""

from __future__ import annotations

import os

MARK = "SWEEPER_LOCAL_RAY"


def _token(pid: int, started: float) -> str:
    return f"{pid}:{started:.2f}"


def mark() -> None:
    """Mark the local Ray this process is about to start as this driver's."""
    import psutil

    me = psutil.Process()
    os.environ[MARK] = _token(me.pid, me.create_time())


def _alive(token: str) -> bool:
    import psutil

    pid, _, started = token.partition(":")
    try:
        proc = psutil.Process(int(pid))
        return _token(proc.pid, proc.create_time()) == token
    except (psutil.Error, ValueError):
        return False


def reap() -> list[int]:
    """End the processes of local Rays whose driver is gone; the pids of the drivers whose
    processes were ended."""
    import psutil

    mine = os.environ.get(MARK)
    uid = os.getuid()
    drivers: dict[str, bool] = {}
    gone: set[int] = set()
    for proc in psutil.process_iter():
        try:
            if proc.pid == os.getpid() or proc.uids().real != uid:
                continue
            token = proc.environ().get(MARK)
            if not token or token == mine:
                continue
            if token not in drivers:
                drivers[token] = _alive(token)
            if not drivers[token]:
                proc.kill()
                gone.add(int(token.partition(":")[0]))
        except (psutil.Error, OSError, ValueError):
            continue  # gone meanwhile, or not ours to read
    return sorted(gone)
