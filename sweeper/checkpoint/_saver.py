"""The runner's side of checkpoints: when one is due, writing it, writing final weights.

What was written is listed in `saved` for the driver, which records it on the trial (runners
never touch the study store). A checkpoint is due every `every_epochs` epochs, or with
`every_epochs: auto` at the first epoch end after `auto_s` seconds of training since the last
one: short trials never pay for checkpoints, long ones lose at most about a minute.
"""

from __future__ import annotations

import time
from typing import Any

from sweeper.checkpoint._file import pack
from sweeper.checkpoint._rng import rng_state
from sweeper.checkpoint._store import Checkpoints, checkpoint_id, weights_id

AUTO_S = 60.0


class Saver:
    """The runner's side of checkpointing: writes a trial's checkpoints when due (every N epochs, or
    by time) and its weights at the end, and tells the driver what it wrote."""

    def __init__(
        self,
        checkpoints: Checkpoints,
        trial: int,
        every_epochs: int | None,
        keep_weights: bool,
        auto_s: float = AUTO_S,
    ) -> None:
        """`every_epochs`: 0 = never, None = auto."""
        self.checkpoints = checkpoints
        self.trial = trial
        self.every = every_epochs
        self.keep_weights = keep_weights
        self.auto_s = auto_s
        self.last = time.monotonic()
        self.saved: list[dict[str, Any]] = []
        self.seconds = 0.0
        self.write_failed = False

    def due(self, epoch: int, epochs: int) -> bool:
        """Whether the state after `epoch` epochs (of `epochs`) should be checkpointed. The
        last epoch never is: the trial is over, and its weights are kept separately."""
        if epoch >= epochs or self.every == 0:
            return False
        if self.every is None:
            return time.monotonic() - self.last >= self.auto_s
        return epoch % self.every == 0

    def _failed(self, what: str, e: Exception) -> None:
        """A checkpoint is insurance: one that cannot be written is reported, and the trial
        trains on (once per trial, not once per epoch)."""
        if not self.write_failed:
            self.write_failed = True
            where = self.checkpoints.location
            self.saved.append(
                {
                    "kind": "error",
                    "text": f"could not write {what} to {where} ({type(e).__name__}: {e}); "
                    "the trial goes on without it. Check checkpoint.store (space, permissions)",
                }
            )

    def checkpoint(self, epoch: int, state: Any) -> None:
        """Write the trial's state after `epoch` (with the random states); `due` says when."""
        t0 = time.perf_counter()
        blob = pack({"epoch": epoch, "state": state, "rng": rng_state()})
        artifact = checkpoint_id(self.checkpoints.study, self.trial, epoch)
        try:
            self.checkpoints.write(artifact, blob)
        except Exception as e:
            self._failed(f"the checkpoint of epoch {epoch}", e)
            return
        seconds = time.perf_counter() - t0
        self.seconds += seconds
        self.last = time.monotonic()
        self.saved.append(
            {"kind": "checkpoint", "id": artifact, "epoch": epoch, "bytes": len(blob)}
        )

    def weights(self, state_dict: dict[str, Any]) -> None:
        """Write the trial's final weights (for `load_best_model`)."""
        if not self.keep_weights:
            return
        t0 = time.perf_counter()
        blob = pack(state_dict)
        artifact = weights_id(self.checkpoints.study, self.trial)
        try:
            self.checkpoints.write(artifact, blob)
        except Exception as e:
            self._failed("the trial's final weights", e)
            return
        self.seconds += time.perf_counter() - t0
        self.saved.append({"kind": "weights", "id": artifact, "bytes": len(blob)})

    def drain(self) -> list[dict[str, Any]]:
        """What was written since the last call, for the driver to record."""
        out, self.saved = self.saved, []
        return out
