"""What the driver keeps in the checkpoint store, and the records of it on the trials.

- a running trial: its last two checkpoints (the newest, and the one before in case the
  newest turns out damaged); a re-queued trial hands them to its re-run;
- a finished trial: nothing, unless it is among the `keep_best` best: then its final
  weights, shown as an artifact on the trial in optuna-dashboard;
- everything else (pruned, failed, superseded, what a killed run wrote but never reported)
  is removed when the trial, or the re-run that continued it, finishes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sweeper.checkpoint import Checkpoints, weights_id
from sweeper.store import attrs, drop_trial_attrs, weights_holders

ARTIFACT_PREFIX = "artifacts:"  # Optuna's key for a trial's artifact records


class Retention:
    """Keeps the best `keep_best` trials' weights and the running trials' checkpoints, and deletes
    the rest from the artifact store as results come in."""

    def __init__(
        self,
        storage: Any,
        study_id: int,
        checkpoints: Checkpoints,
        keep_best: int,
        maximize: bool,
        db: Callable[..., Any],
        directions: list[bool] | None = None,
    ) -> None:
        """`db(fn, *args, what=...)` runs a store call with sweeper's retry policy.
        `directions`: with several objectives, whether each is maximized; then the weights of
        the Pareto front's members are kept too (`sweeper best --pick` may load any)."""
        self.storage = storage
        self.checkpoints = checkpoints
        self.keep_best = keep_best
        self.maximize = maximize
        self.db = db
        self.directions = directions if directions and len(directions) > 1 else None
        held = db(weights_holders, storage, study_id, attrs.WEIGHTS, what="reading kept weights")
        # (value, number, trial_id, artifact id), best first
        self.best = self._sorted([(v, n, tid, a) for tid, n, v, a in held])
        self.values: dict[int, list[float]] = {}  # several objectives: each kept trial's
        if self.directions is not None:
            for _v, n, tid, _a in self.best:
                got = db(storage.get_trial, tid, what="reading kept weights")
                self.values[n] = list(got.values or [])

    def _sorted(self, items: list[tuple[float, int, int, str]]) -> list[Any]:
        return sorted(items, key=lambda x: (-x[0] if self.maximize else x[0], x[1]))

    # -- a running trial ---------------------------------------------------------------------
    def checkpoint_written(
        self, trial_id: int, kept: list[dict[str, Any]], new: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Record `new` as the trial's newest checkpoint; returns what to keep (newest
        first) after removing the ones before the previous."""
        keep = [{"id": new["id"], "epoch": new["epoch"]}, *kept][:2]
        self.db(
            self.storage.set_trial_user_attr,
            trial_id,
            attrs.CHECKPOINTS,
            keep,
            what="recording a checkpoint",
        )
        for old in kept[1:]:
            if old["id"] not in {k["id"] for k in keep}:
                self.checkpoints.remove(old["id"])
        return keep

    # -- a finishing trial -------------------------------------------------------------------
    def _dominated(self, values: list[float], number: int | None = None) -> bool:
        """Whether a kept trial (other than `number`) is at least as good on every objective
        and better on one."""
        assert self.directions is not None
        signs = [-1.0 if up else 1.0 for up in self.directions]
        mine = [s * v for s, v in zip(signs, values, strict=True)]
        for n, other in self.values.items():
            if n == number or len(other) != len(mine):
                continue
            theirs = [s * v for s, v in zip(signs, other, strict=True)]
            if all(t <= m for t, m in zip(theirs, mine, strict=True)) and theirs != mine:
                return True
        return False

    def would_keep(self, value: float, values: list[float] | None = None) -> bool:
        """Whether a trial finishing with `value` (its objectives' `values`, with several)
        would be among the best kept, or on the front of the kept ones."""
        if self.keep_best <= 0:
            return False
        if self.directions is not None and values is not None and not self._dominated(values):
            return True
        if len(self.best) < self.keep_best:
            return True
        worst = self.best[self.keep_best - 1][0]
        return value > worst if self.maximize else value < worst

    def record_weights(self, trial_id: int, number: int, artifact: str) -> None:
        """Before the tell (Optuna writes only to running trials): the weights' record and
        the artifact that optuna-dashboard lists on the trial."""
        meta = {
            "artifact_id": artifact,
            "filename": f"trial-{number}-weights.pt",
            "mimetype": "application/octet-stream",
            "encoding": None,
        }
        self.db(
            self.storage.set_trial_user_attr,
            trial_id,
            attrs.WEIGHTS,
            artifact,
            what="recording a trial's weights",
        )
        self.db(
            self.storage.set_trial_system_attr,
            trial_id,
            ARTIFACT_PREFIX + artifact,
            json.dumps(meta),
            what="recording a trial's weights",
        )

    def finished(
        self,
        number: int,
        trial_id: int,
        value: float | None,
        kept_weights: str | None,
        checkpoints: list[dict[str, Any]],
        chain: list[int],
        values: list[float] | None = None,
    ) -> None:
        """After the tell: remove the trial's checkpoints and those of the runs it continued
        (`chain`), its weights unless kept, and the weights that dropped out of the best K."""
        for ck in checkpoints:
            self.checkpoints.remove(ck["id"])
        for n in [*chain, number]:
            for artifact in self.checkpoints.trial_files(n):
                self.checkpoints.remove(artifact)
            if not (n == number and kept_weights):
                self.checkpoints.remove(weights_id(self.checkpoints.study, n))
        if kept_weights is None or value is None:
            return
        self.best = self._sorted([*self.best, (value, number, trial_id, kept_weights)])
        keep = {b[1] for b in self.best[: self.keep_best]}
        if self.directions is not None:
            if values is not None:
                self.values[number] = list(values)
            keep |= {n for n, v in self.values.items() if not self._dominated(v, n)}
        dropped = [b for b in self.best if b[1] not in keep]
        self.best = [b for b in self.best if b[1] in keep]
        for n in [b[1] for b in dropped]:
            self.values.pop(n, None)
        for _v, _n, tid, artifact in dropped:
            self.checkpoints.remove(artifact)
            self.db(
                drop_trial_attrs,
                self.storage,
                tid,
                [attrs.WEIGHTS],
                [ARTIFACT_PREFIX + artifact],
                what="dropping superseded weights",
            )

    def held_ids(self) -> list[str]:
        """The artifact ids held now: kept weights and the checkpoints of running trials."""
        return [b[3] for b in self.best]
