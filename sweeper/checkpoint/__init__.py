"""Trial checkpoints and trained weights in the study's artifact store.

A runner writes; the driver records what was written on the trial, decides what to keep, and
hands a re-queued trial the checkpoint to resume from. Every file carries its own length and
checksum, so a torn or truncated write is detected on load and the previous one is used.
"""

from sweeper.checkpoint._file import CorruptCheckpoint, pack, unpack
from sweeper.checkpoint._rng import restore_rng, rng_state
from sweeper.checkpoint._saver import Saver
from sweeper.checkpoint._store import (
    Checkpoints,
    checkpoint_id,
    describe,
    open_store,
    weights_id,
)

__all__ = [
    "Checkpoints",
    "Saver",
    "CorruptCheckpoint",
    "checkpoint_id",
    "describe",
    "open_store",
    "pack",
    "restore_rng",
    "rng_state",
    "unpack",
    "weights_id",
]
