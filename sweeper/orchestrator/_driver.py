"""The driver: gate, then ask -> run on Ray -> report/prune -> tell, until the budget is met.

Everything that touches the study store happens here, in one process: runners never write to
it. That keeps SQLite to one writer per driver, and lets a runner live on a node that cannot
reach the store.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib.util
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna

from sweeper._redact import redact
from sweeper.checkpoint import Checkpoints
from sweeper.definition import Definition, LoadedDefinition
from sweeper.diagnosis import after_search
from sweeper.errors import (
    StoreFaultError,
    StudyMismatchError,
    SweeperError,
    TaskError,
    catch_sigterm,
)
from sweeper.orchestrator._after import wrap_up
from sweeper.orchestrator._cluster import concurrency, init_ray, worker_log, worker_log_ready
from sweeper.orchestrator._gate_run import apply_lr_cap, study_gate
from sweeper.orchestrator._recording import Outcome, Progress
from sweeper.orchestrator._recovery import driver_token, recover
from sweeper.orchestrator._rounds import record_stages
from sweeper.orchestrator._search import Search
from sweeper.orchestrator._workers import Workers
from sweeper.probes import Settings
from sweeper.search import (
    fixed_values,
    make_pruner,
    make_sampler,
    read_ahead,
)
from sweeper.store import (
    Store,
    attrs,
    is_confirmation,
    needs_ranking,
    rank,
    retrying,
    state_counts,
    study_front,
)
from sweeper.task import add_search_paths, load_task, search_paths

log = logging.getLogger("sweeper")


def open_study(
    loaded: LoadedDefinition, storage: Any, progress: Progress | None = None
) -> optuna.Study:
    """Create the study, or load it if it exists and was made from the same search setup.
    A study with no trial finished or running yet takes the new setup (say, a fixed typo)."""
    spec = loaded.spec
    parallel = True
    study = optuna.create_study(
        storage=storage,
        study_name=spec.name,
        load_if_exists=True,
        directions=[optuna.study.StudyDirection[str(o.direction).upper()] for o in spec.goals()],
        sampler=make_sampler(spec, parallel),
        pruner=make_pruner(spec),
    )
    stored = attrs.get_study_attr(study, attrs.FINGERPRINT)
    if stored is None and study.trials:
        raise StudyMismatchError(
            f"study {spec.name!r} already exists in the store but was not created by sweeper; "
            "choose another `name:` in the definition"
        )
    healed = stored is not None and stored != loaded.fingerprint and _empty(study)
    if stored is None or healed:
        attrs.set_study_attr(study, attrs.FINGERPRINT, loaded.fingerprint)
        attrs.set_study_attr(study, attrs.DEFINITION, redact(loaded.text))
        attrs.set_study_attr(study, attrs.FIXED, fixed_values(spec.search))
        study.set_metric_names([o.metric for o in spec.goals()])
        if healed and progress is not None:
            progress.note(
                f"study {spec.name!r} had no finished trial yet: it now uses this definition"
            )
    elif stored != loaded.fingerprint:
        raise StudyMismatchError(
            f"study {spec.name!r} in the store was created with a different task, objective, "
            "epochs, stages or search space; its trials would not be comparable. Give this "
            f"definition a new `name:` (e.g. {spec.name}-v2), or delete the old study with "
            f"`optuna delete-study --study-name {spec.name} --storage URL`"
        )
    if [d.name.lower() for d in study.directions] != [o.direction for o in spec.goals()]:
        raise StudyMismatchError(
            f"study {spec.name!r} in the store optimizes "
            f"{'/'.join(d.name.lower() for d in study.directions)}, not what this definition "
            "asks; give the definition a new `name:`"
        )
    return study


def _empty(study: optuna.Study) -> bool:
    """No trial has finished (complete or pruned), runs or waits: only failures, if any."""
    counts = state_counts(study._storage, study._study_id)
    return not any(counts.get(s, 0) for s in ("complete", "pruned", "running", "waiting"))


def run_study(
    loaded: LoadedDefinition,
    progress: Progress | None = None,
    address: str | None = None,
    trials: int | None = None,
    show_output: bool | None = None,
) -> Outcome:
    """Gate, then search until the budget is met: `budget.trials` finished trials in the
    study (shared with any other driver on it), or, with `trials`, that many more from this
    driver. Trials left running by a dead driver are failed and re-queued first. The
    workers' output goes to the study's `workers.log`, unless `show_output` (default: the
    SWEEPER_SHOW_OUTPUT environment variable) prints the task's output on the console."""
    spec = loaded.spec
    t0 = time.perf_counter()
    me = driver_token()
    # Nothing is written until the definition (loaded by the caller), the task and the
    # cluster are known good: a typo costs the message, not a study that remembers it.
    paths = search_paths(loaded.path)
    add_search_paths(paths)
    store = Store.at(spec.storage, spec.artifacts)  # derived from the URL here, once
    ck_settings = checkpoint_settings(spec, store)  # before Ray: a job's driver may lose its cwd
    catch_sigterm()
    store.check_folder()  # before Ray: its start-up noise would bury the message
    store.check_server()  # a server that refuses: said in seconds, before Ray starts
    dumps = logs_folder(store, spec)  # absolute before Ray: ray.init may move the cwd
    if trials is None:
        met = budget_met(loaded, store, t0, progress)
        if met is not None:
            return met
        if address is not None or os.environ.get("RAY_ADDRESS"):
            store.forget()  # ray.init may move this process to the job's working directory,
            # where a relative SQLite path means another file: opened again after it
    worker_log(dumps / "workers.log", show_output)
    with _loading_task(spec, address) as task_loaded:  # the task loads while Ray starts
        init_ray(address, spec.task, paths)
        catch_sigterm()  # again: ray.init installs its own handler, which would exit at once
    problem = task_loaded().metric_problem(spec.objective.metric)  # a task error: exit 2
    if problem is not None:
        raise TaskError(f"{problem} (nothing was written)")
    fits = concurrency(spec)
    n_runners = fits if trials is None else min(fits, trials)
    workers = _start_workers(spec, paths, ck_settings, n_runners, progress, dumps)
    try:
        refs = [r.load.remote() for r in workers.runners]  # all load at once
        # the runners start (a process each: import torch, load the task) while the store opens
        study = _open_and_recover(loaded, store, me, ck_settings, progress)
        worker_log_ready()  # the start is known good: the workers' output may be written
        for i, ref in enumerate(refs):
            loaded_ = workers.get(i, "load", ref=ref, what="loading the task")
            if loaded_.error is not None:
                raise TaskError(loaded_.error)

        fixed = attrs.get_study_attr(study, attrs.FIXED, {}) or {}
        gate = (
            study_gate(study, spec, store, workers, progress) if spec.probes.gate != "off" else None
        )
        unlogged = _lightning_metric_problem(task_loaded(), gate, spec.objective.metric)
        if unlogged is not None:
            raise TaskError(f"{unlogged} (no trial was run)")
        spec = apply_lr_cap(study, spec, gate, progress)

        checkpoints = (
            Checkpoints(ck_settings["location"], spec.name) if ck_settings is not None else None
        )
        search = Search(
            study, spec, fixed, workers, progress, t0, me, quota=trials, checkpoints=checkpoints
        )
        search.loop()
    finally:  # give the CPUs/GPUs back now, not when the handles are garbage-collected
        workers.kill_all()
    outcome = search.outcome(gate)
    wrap_up(study, spec, outcome, progress)
    return outcome


def _start_workers(
    spec: Definition,
    paths: list[str],
    ck_settings: dict[str, Any] | None,
    n_runners: int,
    progress: Progress | None,
    dumps: Path | None = None,
) -> Workers:
    """The runner actors, one per trial that runs at once, starting in the background; each
    writes its watchdog and crash dumps to `dumps`."""
    from sweeper.orchestrator._runner import remote_runner

    runner_cls = remote_runner(spec.resources.cpus, spec.resources.gpus)
    probe_settings = Settings.from_spec(spec.probes).model_dump()

    def make_runner() -> Any:
        return runner_cls.remote(
            spec.task,
            spec.task_args,
            paths,
            probe_settings,
            spec.probes.trial,
            spec.resources.cpus,
            ck_settings,
            str(dumps) if dumps is not None else None,
            {"metrics": spec.cost_metrics(), "batch": spec.costs.batch},
        )

    return Workers(
        make_runner, max(1, n_runners), progress.note if progress else log.info, dumps=dumps
    )


def logs_folder(store: Store, spec: Definition) -> Path:
    """Where the study's workers leave their last words (a hang's or a crash's stacks):
    sweeper-logs/<study name>/ beside the store's artifacts folder (which holds only
    checkpoints, weights and plots)."""
    return (store.artifacts.parent / "sweeper-logs" / spec.name).resolve()


def _lightning_metric_problem(task: Any, gate: Any, metric: str) -> str | None:
    """A `fit` that trains under Lightning's SweeperCallback reports what its module logs: an
    objective it never logs (the gate ran one training and one validation step) is refused."""
    import sys

    if gate is None or task.fit is None or "sweeper.integrations.lightning" not in sys.modules:
        return None
    from sweeper.probes._logged import logged_problem

    return logged_problem(gate.logged, metric)


def _open_and_recover(
    loaded: LoadedDefinition,
    store: Store,
    me: str,
    ck_settings: dict[str, Any] | None,
    progress: Progress | None,
) -> optuna.Study:
    """The study, opened (or made) in its store, with trials a dead driver left running failed
    and re-queued, its trials read ahead, and its checkpoint store recorded."""
    storage = store.open()  # already open when budget_met could open it
    study = retrying(open_study, loaded, storage, progress, what="opening the study")
    for number, why in retrying(recover, study, me, what="checking for orphaned trials"):
        if progress:
            progress.note(f"trial {number} failed and re-queued: {why}")
    read_ahead(study)  # while the runners load and the gate runs
    retrying(record_stages, study, loaded.spec, what="recording the stages")
    if ck_settings is not None:
        retrying(
            attrs.set_study_attr,
            study,
            attrs.CHECKPOINT_STORE,
            ck_settings["location"],
            what="recording the checkpoint store",
        )
    return study


def budget_met(
    loaded: LoadedDefinition, store: Store, t0: float, progress: Progress | None = None
) -> Outcome | None:
    """The outcome of a study that already has `budget.trials` finished trials and none
    running or waiting: there is nothing to run, so no Ray, no runners and no gate (a re-run
    of a finished study used to start them all to find that out). None when there is work
    left, or when the store cannot tell at once (the full start opens it and says why).
    The store stays open, when it could be opened, for the full start to use."""
    from sqlalchemy.exc import SQLAlchemyError

    spec = loaded.spec
    study_id: int | None = None
    best, met = None, False
    after = None
    front: Any = None
    try:
        if not store.may_hold_studies():
            return None  # a new store: no tables are written before the task loads
        storage = store.open()
        with contextlib.suppress(KeyError):  # no such study yet
            study_id = storage.get_study_id_from_name(spec.name)
        if study_id is not None:
            system = storage.get_study_system_attrs(study_id)
            counts = state_counts(storage, study_id)
            finished = counts.get("complete", 0) + counts.get("pruned", 0)
            met = (
                system.get(attrs.FINGERPRINT) == loaded.fingerprint  # else the full start says why
                and not counts.get("running")
                and not counts.get("waiting")
                and finished >= spec.budget.trials
            )
            ranked = spec.stages or spec.confirm or needs_ranking(system)
            if met and ranked:  # every trial read once: the confirmation's state and the best
                trials = storage.get_all_trials(study_id, deepcopy=False)
                met = _confirmed(trials, spec, system)
                if met:
                    study = optuna.load_study(study_name=spec.name, storage=storage)
                    ranking = rank(trials, spec.objective.direction == "maximize")
                    after = after_search(study, ranking=ranking)
                    best = ranking.best()
            elif met and counts.get("complete") and (spec.objectives or spec.constraints):
                # the front, or the best feasible trial: Optuna's study reads the constraints
                front = study_front(optuna.load_study(study_name=spec.name, storage=storage))
                best = front.pick() if front.members else None
            elif met and counts.get("complete"):
                best = storage.get_best_trial(study_id)
    except StoreFaultError:
        raise  # a store it cannot write (full, read-only) fails now, not after Ray starts
    except (SweeperError, SQLAlchemyError, OSError):  # the full start rides it out or says why
        return None
    if not met:
        return None
    if progress is not None:
        progress.note(
            f"study {spec.name!r} already has {finished} finished trials (budget.trials: "
            f"{spec.budget.trials}): nothing to run. Raise budget.trials, or add --trials N "
            "for N more"
        )
    fixed = system.get(attrs.FIXED) or {}
    outcome = Outcome(
        spec.name,
        spec.storage,
        {state: counts.get(state, 0) for state in ("complete", "pruned", "fail")},
        float(best.values[0]) if best is not None else None,
        {**fixed, **best.params} if best is not None else None,
        best.number if best is not None else None,
        time.perf_counter() - t0,
        None,
        front=front if spec.objectives else None,
    )
    if after is not None:
        outcome.ranking, outcome.after, outcome.diagnosis = (
            after.ranking,
            after.lines(),
            after.diagnosis,
        )
    return outcome


def _confirmed(trials: list[Any], spec: Definition, system: dict[str, Any]) -> bool:
    """Whether a study's search trials (its confirmation runs are not) have all finished and
    the confirmation this definition asks for, if any, is done."""
    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.PRUNED)
    searched = sum(t.state in done for t in trials if not is_confirmation(t))
    if searched < spec.budget.trials:
        return False
    if spec.confirm is None:
        return True
    kept = system.get(attrs.CONFIRM) or {}
    asked = {"top": spec.confirm.top, "seeds": spec.confirm.seeds, "done": True}
    return all(kept.get(k) == v for k, v in asked.items())


@contextlib.contextmanager
def _loading_task(spec: Definition, address: str | None) -> Iterator[Callable[[], Any]]:
    """Load the task in a thread while the caller starts Ray (both take seconds: importing
    torch and the user's data, starting Ray's processes); yields a function that returns
    the task or raises its error. A module that cannot be found fails at once, before Ray."""
    if address is not None or os.environ.get("RAY_ADDRESS"):
        # on a cluster, or as a Ray job's driver: ray.init may change this process's working
        # directory (a job's runtime env), which an import running beside it would lose
        task = load_task(spec.task, spec.task_args)
        yield lambda: task
        return
    module = spec.task.partition(":")[0]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        load_task(spec.task, spec.task_args)  # raises the TaskError naming the module
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sweeper-load") as pool:
        future = pool.submit(load_task, spec.task, spec.task_args)
        yield future.result


def checkpoint_settings(spec: Definition, store: Store) -> dict[str, Any] | None:
    """Where and how often runners checkpoint (None: neither checkpoints nor weights). The
    store is the definition's `checkpoint.store`, else the study's artifact folder, so the
    kept weights show in optuna-dashboard beside the gate's plots; a folder is made absolute
    here, because workers do not run in this directory."""
    ck = spec.checkpoint
    every = None if ck.every_epochs == "auto" else int(ck.every_epochs)
    if every == 0 and ck.keep_best == 0:
        return None
    location = ck.store or str(store.artifacts)
    if not re.match(r"^(s3|gs)://", location):
        try:
            location = str(Path(location).resolve())
        except OSError:  # no working directory left: keep the folder as written
            pass
    return {
        "location": location,
        "study": spec.name,
        "every_epochs": every,
        "keep_weights": ck.keep_best > 0,
    }
