"""The gate's training probes take no more intra-op threads than the machine has free.

With several threads, each of torch's ops waits for the slowest of them. When other processes
keep the CPUs busy, a thread is often off its core for a time slice, and the small ops of the
gate's fits (16 rows, a handful of sequences) then wait a slice each: the tiny fit ran 2x
slower on two threads than on one while the test suite shared the machine, yet 1.2-3x faster
on two when idle. So the count is decided when a fit starts, from what other processes used
since the last look (this process's own CPU time taken out): the gate's earlier probes are
the window, so it costs nothing but where they took under 0.1 s.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
import torch


class CpuShare:
    """CPUs other processes kept busy between two looks (this process's own time left out)."""

    def __init__(self) -> None:
        self._me = psutil.Process()
        self._last = self._now()

    def _now(self) -> tuple[float, float, float]:
        t = psutil.cpu_times()
        busy = sum(t) - t.idle - getattr(t, "iowait", 0.0)
        mine = self._me.cpu_times()
        return time.monotonic(), busy, mine.user + mine.system

    def others(self) -> float:
        """CPUs' worth of other processes' work since the last look; a window shorter than
        0.1 s is waited out first (once at most per fit: too short a window tells nothing)."""
        now = self._now()
        wall = now[0] - self._last[0]
        if wall < 0.1:
            time.sleep(0.1 - wall)
            now = self._now()
            wall = now[0] - self._last[0]
        others = max(0.0, (now[1] - self._last[1]) - (now[2] - self._last[2])) / wall
        self._last = now
        return others


@contextmanager
def free_threads(share: CpuShare) -> Iterator[int]:
    """torch's intra-op threads on this thread set, for a while, to at most the CPUs the other
    processes left free (at least 1); yields the count."""
    before = torch.get_num_threads()
    free = (os.cpu_count() or 1) - share.others()
    n = max(1, min(before, int(free + 0.5)))
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)
