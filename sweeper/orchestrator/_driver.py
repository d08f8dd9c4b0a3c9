"""The driver: gate, then ask -> run on Ray -> report/prune -> tell, until the budget is met.

Everything that touches the study store happens here, in one process: runners never write to
it. That keeps SQLite to one writer per driver, and lets a runner live on a node that cannot
reach the store.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.trial import TrialState

from sweeper.definition import LoadedDefinition
from sweeper.errors import GateFailedError, StudyMismatchError, SweeperError, TaskError
from sweeper.probes._context import Settings
from sweeper.search import (
    cap_lr,
    distributions,
    fixed_values,
    make_pruner,
    make_sampler,
    reference_params,
)
from sweeper.store import attrs, open_storage
from sweeper.store._storage import HEARTBEAT_S

log = logging.getLogger("sweeper")
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)
MAX_RETRIES = 2


class Progress(Protocol):
    def gate_done(self, report: dict[str, Any]) -> None: ...
    def note(self, text: str) -> None: ...
    def trial_done(
        self, number: int, state: str, value: float | None, params: dict[str, Any], note: str
    ) -> None: ...
    def tick(
        self, counts: dict[str, int], best: float | None, elapsed: float, target: int
    ) -> None: ...


@dataclass
class Outcome:
    study_name: str
    storage: str
    counts: dict[str, int]
    best_value: float | None
    best_params: dict[str, Any] | None
    best_number: int | None
    elapsed_s: float
    gate: dict[str, Any] | None
    stopped_reason: str = ""
    probe_seconds_saved: float = 0.0


@dataclass
class _Slot:
    runner: Any
    trial: optuna.Trial | None = None
    params: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    ref: Any = None
    phase: str = ""
    started: float = 0.0
    findings: list[dict[str, Any]] = field(default_factory=list)
    probe_seconds: float = 0.0


def open_study(loaded: LoadedDefinition, storage: Any) -> optuna.Study:
    """Create the study, or load it if it exists and was made from the same search setup."""
    spec = loaded.spec
    parallel = True
    study = optuna.create_study(
        storage=storage,
        study_name=spec.name,
        load_if_exists=True,
        direction=spec.objective.direction,
        sampler=make_sampler(spec, parallel),
        pruner=make_pruner(spec),
    )
    stored = attrs.get_study_attr(study, attrs.FINGERPRINT)
    if stored is None:
        if study.trials:
            raise StudyMismatchError(
                f"study {spec.name!r} already exists in the store but was not created by sweeper; "
                "choose another `name:` in the definition"
            )
        attrs.set_study_attr(study, attrs.FINGERPRINT, loaded.fingerprint)
        attrs.set_study_attr(study, attrs.DEFINITION, loaded.text)
        attrs.set_study_attr(study, attrs.FIXED, fixed_values(spec.search))
        study.set_metric_names([spec.objective.metric])
    elif stored != loaded.fingerprint:
        raise StudyMismatchError(
            f"study {spec.name!r} in the store was created with a different task, objective, "
            "epochs or search space; its trials would not be comparable. Give this definition "
            f"a new `name:` (e.g. {spec.name}-v2), or delete the old study with "
            f"`optuna delete-study --study-name {spec.name} --storage URL`"
        )
    if study.direction.name.lower() != spec.objective.direction:
        raise StudyMismatchError(f"study {spec.name!r} optimizes in the other direction")
    return study


def _init_ray(address: str | None, search_paths: list[str]) -> None:
    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {
        "logging_level": logging.WARNING,
        "log_to_driver": True,
        "include_dashboard": False,
        "configure_logging": True,
    }
    if address:
        kwargs["address"] = address
    else:
        kwargs["num_cpus"] = os.cpu_count() or 1
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    ray.init(**kwargs)


def _concurrency(spec: Any) -> int:
    import ray

    res = ray.cluster_resources()
    fits = math.floor(res.get("CPU", 1) / spec.resources.cpus + 1e-9)
    if spec.resources.gpus > 0:
        fits = min(fits, math.floor(res.get("GPU", 0) / spec.resources.gpus + 1e-9))
        if fits < 1:
            raise SweeperError(
                f"resources.gpus is {spec.resources.gpus} but the Ray cluster has "
                f"{res.get('GPU', 0)} GPUs; set resources.gpus: 0 to run on CPUs"
            )
    limit = spec.resources.max_concurrent or fits
    return max(1, min(limit, fits, spec.budget.trials))


def run_study(
    loaded: LoadedDefinition, progress: Progress | None = None, address: str | None = None
) -> Outcome:
    """Gate, then search until the definition's budget of finished trials is met."""
    import ray

    from sweeper.orchestrator._runner import remote_runner

    spec = loaded.spec
    t0 = time.perf_counter()
    storage = open_storage(spec.storage)
    study = open_study(loaded, storage)
    optuna.storages.fail_stale_trials(study)

    search_paths = [str(Path.cwd())]
    if loaded.path is not None:
        search_paths.insert(0, str(loaded.path.resolve().parent))
    _init_ray(address, search_paths)
    n_runners = _concurrency(spec)
    runner_cls = remote_runner(spec.resources.cpus, spec.resources.gpus)
    probe_settings = asdict(Settings.from_spec(spec.probes))
    runners = [
        runner_cls.remote(
            spec.task,
            spec.task_args,
            search_paths,
            probe_settings,
            spec.probes.trial,
            spec.resources.cpus,
        )
        for _ in range(n_runners)
    ]
    loads = ray.get([r.load.remote() for r in runners])
    errors = [x["error"] for x in loads if "error" in x]
    if errors:
        raise TaskError(errors[0])
    device = loads[0].get("device", "cpu")

    fixed = attrs.get_study_attr(study, attrs.FIXED, {}) or {}
    gate = None
    if spec.probes.gate != "off":
        ref = {**reference_params(spec.search)}
        gate = ray.get(runners[0].gate.remote(ref))
        if "error" in gate:
            raise TaskError(f"the study gate could not run: {gate['error']}")
        gate["reference_params"] = ref
        attrs.save_gate(study, gate)
        if progress:
            progress.gate_done(gate)
        if gate["verdict"] == "fail" and spec.probes.gate == "strict":
            raise GateFailedError(_gate_message(gate))
    spec = _apply_lr_cap(study, spec, gate, progress)

    search = _Search(study, storage, spec, fixed, runners, progress, device, t0)
    search.loop()
    return search.outcome(gate)


def _apply_lr_cap(
    study: optuna.Study, spec: Any, gate: dict[str, Any] | None, progress: Progress | None
) -> Any:
    """Lower the search's lr ceiling below the range test's divergence lr. The cap found on the
    study's first run is kept, so a resumed study searches the same space."""
    if not spec.probes.lr_cap:
        return spec
    cap = attrs.get_study_attr(study, attrs.LR_CAP)
    if cap is None and gate is not None:
        lr_test = next((f for f in gate["findings"] if f["probe"] == "lr_range_test"), None)
        cap = (lr_test or {}).get("details", {}).get("cap")
        if cap is not None:
            attrs.set_study_attr(study, attrs.LR_CAP, cap)
    if cap is None:
        return spec
    capped = cap_lr(spec.search, float(cap))
    if capped is spec.search:
        return spec
    if progress is not None:
        progress.note(
            f"lr range capped at {float(cap):.3g} (below the divergence lr found by "
            "lr_range_test); set `probes: {lr_cap: false}` to keep the full range"
        )
    return spec.model_copy(update={"search": capped})


def _gate_message(gate: dict[str, Any]) -> str:
    lines = [f"{f['probe']}: {f['hint']}" for f in gate["findings"] if f["verdict"] == "fail"]
    return (
        "the study gate failed, so no search was run (gate mode: strict):\n  "
        + "\n  ".join(lines)
        + "\nFix the setup, or set `probes: {gate: warn}` to search anyway."
    )


class _Search:
    def __init__(
        self,
        study: optuna.Study,
        storage: Any,
        spec: Any,
        fixed: dict[str, Any],
        runners: list[Any],
        progress: Progress | None,
        device: str,
        t0: float,
    ) -> None:
        self.study = study
        self.storage = storage
        self.spec = spec
        self.fixed = fixed
        self.dists = distributions(spec.search)
        self.slots = [_Slot(r) for r in runners]
        self.progress = progress
        self.device = device
        self.t0 = t0
        self.counts = {s.name: 0 for s in TrialState}
        for t in study.get_trials(deepcopy=False):
            self.counts[t.state.name] += 1
        self.counts["RUNNING"] = 0
        self.consecutive_failures = 0
        self.stop_reason = ""
        self.last_heartbeat = 0.0
        self.saved_seconds = 0.0
        self.best: float | None = self._best_value()

    # -- bookkeeping -------------------------------------------------------------------------
    def _best_value(self) -> float | None:
        try:
            return float(self.study.best_value)
        except ValueError:
            return None

    def _finished(self) -> int:
        return sum(self.counts[s.name] for s in COUNTED)

    def _running(self) -> list[_Slot]:
        return [s for s in self.slots if s.trial is not None]

    def _may_ask(self) -> bool:
        if self.stop_reason:
            return False
        timeout = self.spec.budget.timeout_s
        if timeout is not None and time.perf_counter() - self.t0 > timeout:
            self.stop_reason = f"wall-clock timeout of {timeout:g}s reached"
            return False
        return self._finished() + len(self._running()) < self.spec.budget.trials

    # -- the loop ----------------------------------------------------------------------------
    def loop(self) -> None:
        import ray

        try:
            while True:
                for slot in self.slots:
                    if slot.trial is None and self._may_ask():
                        self._launch(slot)
                pending = {s.ref: s for s in self.slots if s.ref is not None}
                if not pending:
                    break
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in ready:
                    self._handle(pending[ref], ref)
                self._heartbeat()
                if self.progress:
                    self.progress.tick(
                        self._counts(),
                        self.best,
                        time.perf_counter() - self.t0,
                        self.spec.budget.trials,
                    )
        except BaseException:
            self._abandon("the driver was interrupted")
            raise

    def _counts(self) -> dict[str, int]:
        c = {k.lower(): v for k, v in self.counts.items() if k != "WAITING"}
        c["running"] = len(self._running())
        return c

    def _launch(self, slot: _Slot) -> None:
        trial = self.study.ask(self.dists)
        params = {**self.fixed, **trial.params}
        slot.trial, slot.params, slot.epoch = trial, params, 0
        slot.started = time.perf_counter()
        slot.findings, slot.probe_seconds = [], 0.0
        self.storage.set_trial_user_attr(trial._trial_id, attrs.DEVICE, self.device)
        slot.ref, slot.phase = slot.runner.start.remote(trial.number, params), "start"

    def _handle(self, slot: _Slot, ref: Any) -> None:
        import ray

        assert slot.trial is not None
        slot.ref = None
        try:
            result = ray.get(ref)
        except ray.exceptions.RayActorError as e:
            self._retry(slot, f"the Ray worker running it died ({type(e).__name__})")
            return
        except ray.exceptions.RayError as e:
            self._fail(slot, f"{type(e).__name__}: {e}")
            return
        slot.findings.extend(result.get("findings", []))
        if "probe_seconds" in result:
            slot.probe_seconds = max(slot.probe_seconds, float(result["probe_seconds"]))
        if "error" in result:
            self._fail(slot, result["error"])
        elif "stopped" in result:
            self._prune(slot, f"stopped by probe: {result['stopped']}", probed=True)
        elif slot.phase == "start":
            slot.ref, slot.phase = slot.runner.epoch.remote(), "epoch"
        else:
            self._epoch_done(slot, result["metrics"])

    def _epoch_done(self, slot: _Slot, metrics: dict[str, float]) -> None:
        assert slot.trial is not None
        metric = self.spec.objective.metric
        value = metrics.get(metric)
        if value is None:
            self._fail(
                slot,
                f"metric {metric!r} is not produced for this task; available: {sorted(metrics)}",
            )
            return
        if not math.isfinite(value):
            self._prune(slot, f"{metric} became {value} at epoch {slot.epoch}", probed=True)
            return
        slot.trial.report(value, slot.epoch)
        slot.epoch += 1
        if slot.epoch >= self.spec.budget.epochs:
            self._finish(slot, TrialState.COMPLETE, value, "")
        elif slot.trial.should_prune():
            self._finish(
                slot, TrialState.PRUNED, None, f"pruned by the pruner at epoch {slot.epoch}"
            )
        else:
            slot.ref, slot.phase = slot.runner.epoch.remote(), "epoch"

    def _prune(self, slot: _Slot, reason: str, probed: bool) -> None:
        if probed:
            # What the trial would still have cost, had no probe stopped it.
            done = max(slot.epoch, 1)
            spent = time.perf_counter() - slot.started
            saved = spent / done * (self.spec.budget.epochs - slot.epoch)
            self.saved_seconds += saved
            assert slot.trial is not None
            self.storage.set_trial_user_attr(
                slot.trial._trial_id, attrs.SECONDS_SAVED, round(saved, 3)
            )
        self._finish(slot, TrialState.PRUNED, None, reason)

    def _fail(self, slot: _Slot, error: str) -> None:
        self._finish(slot, TrialState.FAIL, None, error)

    def _retry(self, slot: _Slot, why: str) -> None:
        assert slot.trial is not None
        retries = int(slot.trial.user_attrs.get(attrs.RETRIES, 0))
        number = slot.trial.number
        self._fail(
            slot,
            f"{why}; "
            + (
                "re-queued with the same params"
                if retries < MAX_RETRIES
                else "gave up after retries"
            ),
        )
        if retries < MAX_RETRIES:
            self.study.enqueue_trial(
                {k: v for k, v in slot.params.items() if k in self.dists},
                user_attrs={attrs.RETRY_OF: number, attrs.RETRIES: retries + 1},
                skip_if_exists=False,
            )

    def _finish(self, slot: _Slot, state: TrialState, value: float | None, note: str) -> None:
        trial = slot.trial
        assert trial is not None
        tid = trial._trial_id
        if slot.findings:
            self.storage.set_trial_user_attr(tid, attrs.FINDINGS, slot.findings)
        self.storage.set_trial_user_attr(tid, attrs.PROBE_SECONDS, round(slot.probe_seconds, 4))
        if state == TrialState.FAIL:
            self.storage.set_trial_user_attr(tid, attrs.ERROR, note[:2000])
        elif state == TrialState.PRUNED and note:
            self.storage.set_trial_user_attr(tid, attrs.STOPPED, note[:2000])
        self.study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
        self.counts[state.name] += 1
        if state == TrialState.FAIL:
            self.consecutive_failures += 1
            limit = self.spec.budget.max_consecutive_failures
            if self.consecutive_failures >= limit and not self.stop_reason:
                self.stop_reason = (
                    f"{limit} trials failed in a row (last: {note}); fix the "
                    "error, then run again to resume"
                )
        else:
            self.consecutive_failures = 0
        if state == TrialState.COMPLETE and value is not None:
            better = self.best is None or (
                value > self.best
                if self.spec.objective.direction == "maximize"
                else value < self.best
            )
            if better:
                self.best = value
        if self.progress:
            self.progress.trial_done(trial.number, state.name.lower(), value, slot.params, note)
        slot.runner.finish.remote()
        slot.trial, slot.ref, slot.phase = None, None, ""

    def _heartbeat(self) -> None:
        now = time.perf_counter()
        if now - self.last_heartbeat < HEARTBEAT_S / 2:
            return
        self.last_heartbeat = now
        for slot in self._running():
            assert slot.trial is not None
            self.storage.record_heartbeat(slot.trial._trial_id)

    def _abandon(self, why: str) -> None:
        """On interrupt: fail the running trials and re-queue their params so a re-run
        finishes them. Never leaves a trial RUNNING."""
        for slot in self._running():
            try:
                self._retry(slot, why)
            except Exception:  # the store may be the thing that broke; its heartbeat expires
                log.exception("could not record trial %s", slot.trial.number if slot.trial else "?")

    def outcome(self, gate: dict[str, Any] | None) -> Outcome:
        best_params = best_number = None
        try:
            bt = self.study.best_trial
            best_params, best_number = {**self.fixed, **bt.params}, bt.number
        except ValueError:
            pass
        counts = {k.lower(): v for k, v in self.counts.items() if k not in ("WAITING", "RUNNING")}
        return Outcome(
            self.study.study_name,
            self.spec.storage,
            counts,
            self.best,
            best_params,
            best_number,
            time.perf_counter() - self.t0,
            gate,
            self.stop_reason,
            self.saved_seconds,
        )
