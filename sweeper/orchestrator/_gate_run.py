"""The study gate run from the driver: on one runner actor, shown probe by probe, saved with
the study (report, dashboard note, plots), reused on a resumed study whose code and settings
did not change, and its lr range test's cap applied to the search."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import optuna

from sweeper.definition import Definition
from sweeper.errors import GateFailedError, TaskError
from sweeper.orchestrator._recording import Progress
from sweeper.orchestrator._records import GatePoll
from sweeper.orchestrator._workers import Workers
from sweeper.probes import Report
from sweeper.report import publish_gate
from sweeper.search import cap_lr, init_schemes, reference_params
from sweeper.store import Store, attrs, retrying


def study_gate(
    study: optuna.Study, spec: Definition, store: Store, workers: Workers, progress: Progress | None
) -> Report:
    """Run the study gate on one runner, save it with the study (report, dashboard note,
    plots), and stop here if it failed in strict mode. A worker that dies under the gate is
    revived and the gate run again."""
    ref = {**reference_params(spec.search)}
    key = gate_key(spec, ref)
    stored = attrs.get_study_attr(study, attrs.GATE)
    earlier = Report.from_dict(stored) if stored else None
    if earlier is not None and earlier.key == key and earlier.verdict != "fail":
        if progress:
            progress.note(
                f"the study gate passed ({earlier.verdict}) on this definition and task "
                "code before: not run again (it runs again when the task's code, the search "
                "or the probes: section change)"
            )
        return earlier
    gate = run_gate_on_worker(workers, ref, init_schemes(spec.search), spec, progress)
    gate.reference_params, gate.key = ref, key
    retrying(attrs.save_gate, study, gate.to_dict(), what="saving the gate report")
    _publish(study, gate, store.artifacts, progress)
    if progress:
        progress.gate_done(gate)
    if gate.verdict == "fail" and spec.probes.gate == "strict":
        raise GateFailedError(_gate_message(gate))
    return gate


def gate_key(spec: Definition, ref: dict[str, Any]) -> str:
    """What a gate report was made from: the task's code (its module and the .py files beside
    it), its arguments, the reference params and the probe settings. An equal key on a
    resumed study means the same gate would run again."""
    import hashlib
    import json

    h = hashlib.sha256()
    h.update(
        json.dumps(
            [spec.task, spec.task_args, ref, spec.probes.model_dump()], sort_keys=True, default=str
        ).encode()
    )
    try:
        found = importlib.util.find_spec(spec.task.partition(":")[0])
    except (ImportError, ValueError):
        found = None
    origin = Path(found.origin) if found is not None and found.origin else None
    if origin is not None and origin.exists():
        files = sorted(origin.parent.glob("*.py"))
        for f in files if len(files) <= 200 else [origin]:
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def run_gate_on_worker(
    workers: Workers, ref: dict[str, Any], schemes: list[str], spec: Definition, progress: Any
) -> Report:
    """Run the gate on runner 0, showing each probe as it ends. A gate that goes silent
    past the watchdog's bound (`probes.watchdog_s`, else derived from what it measured) or a
    probe running past `probes.probe_timeout_s` is ended and named with the user's line. A
    worker that dies is run again once on a fresh worker; a second death is a crash in the
    task's code, named from the dump the worker left, not retried again."""
    import ray

    limit = spec.probes.probe_timeout_s
    deaths: list[str] = []
    show = getattr(progress, "gate_probe", None)
    while True:
        runner = workers.runners[0]
        last = GatePoll()
        try:
            started = ray.get(runner.gate_start.remote(ref, schemes))
            if started.error is not None:
                raise TaskError(f"the study gate could not run: {started.error}")
            while True:
                r = ray.get(runner.gate_poll.remote(1.0))
                if r.lost:
                    raise ray.exceptions.RayActorError()
                if show is not None:
                    for f in r.findings:
                        show(f)
                if r.error is not None:
                    raise TaskError(f"the study gate could not run: {r.error}")
                if r.done is not None:
                    return r.done
                last = r
                if r.running and r.seconds > limit:
                    ray.kill(runner, no_restart=True)
                    where = f" at {r.where}" if r.where else ""
                    raise TaskError(
                        f"the gate's probe {r.running} ran for {r.seconds:.0f} s, past "
                        f"probes.probe_timeout_s = {limit:g}{where}: the model's forward or "
                        "the loss does not return (an endless loop, a blocking read); fix it, "
                        "or raise probe_timeout_s for a model this slow"
                    )
        except ray.exceptions.RayActorError:
            dump = workers.last_words(runner)
            running = dump.part if dump is not None and dump.part else last.running
            probe = f"probe {running}" if running else "its first probe"
            stacks = f"; every thread's stack: {dump.path}" if dump is not None else ""
            if dump is not None and dump.kind == "hang":
                ray.kill(runner, no_restart=True)
                raise TaskError(
                    f"the study gate hung in {probe}: {dump.describe()}. The line named is "
                    "where the task's code waited (a forward, a DataLoader worker, a "
                    "collective that never returns); fix it there, or raise "
                    f"probes.watchdog_s for a model this slow{stacks}"
                ) from None
            if dump is not None:
                what = f"in {probe}: {dump.describe()}"
            else:
                seen = f" (last seen at {last.where})" if last.where else ""
                what = f"in {probe}{seen}"
            deaths.append(what)
            if len(deaths) >= 2:
                both = (
                    f"both times {deaths[0]}"
                    if deaths[0] == deaths[1]
                    else f"first {deaths[0]}, then {deaths[1]}"
                )
                raise TaskError(
                    f"the worker running the study gate died twice, {both}: a crash in the "
                    "task's own code (a segfault or abort in an extension, os._exit), not a "
                    "lost machine; `sweeper probe` on the "
                    f"definition runs the gate in one process to show it{stacks}"
                ) from None
            if progress is not None:
                progress.note(
                    f"the worker running the study gate died {what}; running the gate again "
                    "on a fresh one"
                )
            workers.revive(runner)
            # a call made while Ray still learns of the death fails as a second death: the
            # fresh worker has loaded the task before the gate is asked of it again
            loaded = workers.get(0, "load", what="restarting the study gate's worker")
            if loaded.error is not None:
                raise TaskError(
                    f"the study gate's worker could not restart: {loaded.error}"
                ) from None


def _publish(study: optuna.Study, gate: Report, folder: Path, progress: Progress | None) -> None:
    """The gate note and plots for optuna-dashboard. A plot that cannot be written (a read-only
    or vanished folder) is reported, never a reason to stop the study: the gate report itself
    is already saved with the study."""
    try:
        retrying(publish_gate, study, gate, folder, what="saving the gate note and plots")
    except OSError as e:
        if progress:
            progress.note(
                f"the gate's plots could not be written to {folder} ({e.strerror or e}); set "
                "`artifacts:` in the definition to a writable folder to keep them"
            )


def apply_lr_cap(
    study: optuna.Study, spec: Definition, gate: Report | None, progress: Progress | None
) -> Any:
    """Lower the search's lr ceiling below the range test's divergence lr. The cap found on the
    study's first run is kept, so a resumed study searches the same space."""
    if not spec.probes.lr_cap:
        return spec
    cap = attrs.get_study_attr(study, attrs.LR_CAP)
    if cap is None and gate is not None:
        cap = gate["lr_range_test"].details.get("cap") if "lr_range_test" in gate else None
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


def _gate_message(gate: Report) -> str:
    """The root causes with what to fix, then the failures that follow from them, by name."""
    roots = gate.root_causes
    lines = [f"{f.probe}: {f.hint}" for f in roots]
    follow = [f.probe for f in gate.failures if f.cause]
    if follow:
        lines.append(
            f"(follows from {'the above' if len(roots) > 1 else roots[0].probe}: "
            f"{', '.join(follow)})"
        )
    return (
        "the study gate failed, so no search was run (gate mode: strict):\n  "
        + "\n  ".join(lines)
        + "\nFix the setup, or set `probes: {gate: warn}` to search anyway."
    )
