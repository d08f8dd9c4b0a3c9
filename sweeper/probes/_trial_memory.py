"""`memory_growth`: a trial whose process memory grows steadily from epoch to epoch.

The classic cause is a running total of loss tensors (``total += loss`` instead of
``loss.item()``), which keeps every step's graph alive until memory runs out; a list of
outputs kept for a metric, or a cache keyed by the batch, does the same. Read once per report
(one read of /proc, no per-step cost). The first epoch's allocations, the allocator's and
torch's caches, and a data set loaded lazily grow once and stop: only growth in every one of
the last epochs, well above the noise, warns."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from sweeper.probes._finding import Finding

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mb() -> float | None:
    """This process's resident memory in MB (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * PAGE / 2**20
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class MemoryGrowth:
    """Memory at each of a trial's reports; `see` returns the warning once the growth is
    steady: every one of the last `epochs` epochs (after the first) grew by at least
    `min_mb` and `share` of the memory, without a fall between."""

    epochs: int = 3
    min_mb: float = 20.0
    share: float = 0.02
    seen: list[float] = field(default_factory=list)
    warned: bool = False

    def see(self, mb: float | None) -> Finding | None:
        """The memory after an epoch; the warning, once, when it keeps growing."""
        if mb is None or self.warned:
            return None
        self.seen.append(mb)
        after_first = self.seen[1:]  # the first epoch's allocations and caches are not growth
        if len(after_first) < self.epochs + 1:
            return None
        last = after_first[-(self.epochs + 1) :]
        steps = [b - a for a, b in zip(last, last[1:], strict=False)]
        floor = [max(self.min_mb, self.share * a) for a in last]
        if not all(s >= f for s, f in zip(steps, floor, strict=False)):
            return None
        self.warned = True
        per_epoch = sum(steps) / len(steps)
        return Finding(
            "memory_growth",
            "warn",
            f"+{per_epoch:.0f} MB per epoch ({last[0]:.0f} → {last[-1]:.0f} MB over "
            f"{len(steps)} epochs)",
            "memory flat after the first epoch",
            "the trial's memory grows every epoch: something keeps each step alive. The "
            "usual cause is a running total of loss tensors (`total += loss`): add "
            "`loss.item()` (or `loss.detach()`) instead, and keep outputs for metrics as "
            "detached tensors or numbers; a list or dict that grows per batch does the same",
            details={"mb_per_epoch": round(per_epoch, 1), "rss_mb": round(last[-1], 1)},
        )
