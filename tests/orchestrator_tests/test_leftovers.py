"""The next local run ends the Ray processes a killed driver left, and only those."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

from sweeper.orchestrator import _leftovers as leftovers


def _spawn(token: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, leftovers.MARK: token}
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], env=env)


def test_leftovers_of_a_dead_driver_are_ended_and_no_others() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone_token = f"{dead.pid}:{time.time() - 5:.2f}"  # a driver that no longer runs
    me = psutil.Process()
    alive_token = f"{me.pid}:{me.create_time():.2f}"  # a driver still running (this test)
    orphan, kept = _spawn(gone_token), _spawn(alive_token)
    try:
        time.sleep(0.5)  # let the children exec, so their environment is readable
        old = os.environ.pop(leftovers.MARK, None)
        try:
            ended = leftovers.reap()
        finally:
            if old is not None:
                os.environ[leftovers.MARK] = old
        assert ended == [dead.pid]
        assert orphan.wait(timeout=10) == -9
        assert kept.poll() is None
    finally:
        for p in (orphan, kept):
            p.kill()
            p.wait()
