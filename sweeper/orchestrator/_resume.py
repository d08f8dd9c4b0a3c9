"""Resume bookkeeping of the search: the checkpoints a re-queued trial inherits, the curve it
continues when its runner resumed, and what the runner saved (checkpoints, final weights)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError

from sweeper.orchestrator._retention import Retention
from sweeper.orchestrator._slots import Slot
from sweeper.store import attrs, record_reports


class Resumes:
    """The one owner of a slot's checkpoints, weights and resume chain."""

    def __init__(
        self,
        storage: Any,
        retention: Retention,
        db: Callable[..., Any],
        note: Callable[[str], None],
    ) -> None:
        """`retention`: what the study keeps of its checkpoints and weights; `db`: the
        search's store call wrapper; `note`: a line for the user."""
        self.storage, self.retention = storage, retention
        self._db, self._note = db, note

    def inherit(self, slot: Slot, trial: optuna.Trial) -> dict[str, Any] | None:
        """A re-queued trial inherits the checkpoints of the run it continues (recorded on
        it at once, so a second crash still resumes from them). The runner's `resume`."""
        user_attrs = self._db(
            self.storage.get_trial_user_attrs, trial._trial_id, what="reading a trial"
        )
        resume = user_attrs.get(attrs.RESUME)
        if not resume:
            return None
        slot.resume, slot.chain = resume, list(resume.get("chain", []))
        slot.checkpoints = list(resume["checkpoints"])
        self._db(
            self.storage.set_trial_user_attr,
            trial._trial_id,
            attrs.CHECKPOINTS,
            slot.checkpoints,
            what="recording a checkpoint",
        )
        return {"trial": resume["trial"], "checkpoints": slot.checkpoints}

    def resumed(self, slot: Slot, epoch: int) -> None:
        """The runner resumed at `epoch`: the trial's curve continues the earlier run's, so
        the pruner judges one whole curve."""
        assert slot.trial is not None and slot.resume is not None
        earlier = self._db(self.storage.get_trial, slot.resume["trial_id"], what="reading a trial")
        curve = {s: v for s, v in earlier.intermediate_values.items() if s < epoch}
        tid = slot.trial._trial_id
        reports = [(tid, step, value) for step, value in sorted(curve.items())]
        if self._db(record_reports, self.storage, reports, what="reporting a trial's progress"):
            raise UpdateFinishedTrialError(f"trial {slot.trial.number} is already finished")
        slot.trial._cached_frozen_trial.intermediate_values.update(curve)
        slot.epoch = epoch
        self._db(
            self.storage.set_trial_user_attr,
            slot.trial._trial_id,
            attrs.RESUMED_FROM,
            {"trial": slot.resume["trial"], "epoch": epoch},
            what="recording where a trial resumed",
        )
        self._note(
            f"trial {slot.trial.number} resumed from trial {slot.resume['trial']}'s checkpoint "
            f"at epoch {epoch}"
        )

    def saved(self, slot: Slot, entry: dict[str, Any]) -> None:
        """One thing the runner saved: the trial's final weights, a checkpoint, or why a
        write failed."""
        assert slot.trial is not None
        if entry["kind"] == "weights":
            slot.weights = entry["id"]
        elif entry["kind"] == "error":
            self._note(f"trial {slot.trial.number}: {entry['text']}")
        else:
            slot.checkpoints = self.retention.checkpoint_written(
                slot.trial._trial_id, slot.checkpoints, entry
            )
