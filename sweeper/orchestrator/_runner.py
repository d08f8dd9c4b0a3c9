"""The Ray actor that runs trials and the gate on its own CPU/GPU share.

One runner holds the task's data on its device and trains one trial at a time, one epoch per
call, so the driver decides about pruning between epochs. Errors come back as values, never as
a dead actor: a trial that raises is the trial's failure, not the runner's.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Any

import ray

from sweeper import _watchdog as watchdog
from sweeper.orchestrator._gate_thread import GateThread
from sweeper.orchestrator._records import GatePoll, GateStarted, Loaded, TrialUpdate, WorkerInfo


def _is_oom(e: BaseException) -> bool:
    import torch

    return isinstance(e, torch.cuda.OutOfMemoryError) or "CUDA out of memory" in str(e)


def _error_text(e: BaseException, params: dict[str, Any] | None = None) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    first = (str(e).strip().splitlines() or [""])[0]
    text = f"{type(e).__name__}: {first}{where}"
    if params is not None and _is_oom(e):
        text = (
            f"CUDA out of memory with batch_size={params.get('batch_size')} "
            f"({type(e).__name__}{where}); lower the batch_size choices in the search space, "
            "or give each trial a larger GPU share (resources.gpus)"
        )
    return text


class TrialRunner:
    """The Ray actor that holds the task's data on its device and runs the gate and trials, one at a
    time and one epoch per call; errors come back as values."""

    def __init__(
        self,
        task_ref: str,
        task_args: dict[str, Any],
        search_paths: list[str],
        probe_settings: dict[str, Any],
        trial_probes: bool,
        cpus: float,
        checkpoint: dict[str, Any] | None = None,
        dumps: str | None = None,
        costs: dict[str, Any] | None = None,
    ) -> None:
        """`checkpoint`: where and how often to checkpoint (location, study, every_epochs
        with None for auto, keep_weights), or None for no checkpoints and no weights.
        `dumps`: the folder this process's watchdog and crash dumps go to (read by the
        driver when the process dies; see sweeper._watchdog), or None for no watchdog.
        `costs`: the cost metrics to measure at each trial's last report ({"metrics": [...],
        "batch": rows}; see sweeper.training._costs), or None."""
        self.costs = costs if costs and costs.get("metrics") else None
        self.task_ref = task_ref
        self.task_args = task_args
        self.search_paths = search_paths
        self.probe_settings = probe_settings
        self.trial_probes = trial_probes
        self.cpus = cpus
        self.checkpoint = checkpoint
        self.checkpoints: Any = None
        self.saver: Any = None
        self.task: Any = None
        self.data: Any = None
        self.device: Any = None
        self.session: Any = None  # the running trial (orchestrator._session.Session)
        self.params: dict[str, Any] = {}
        self.start_probe_s = 0.0
        self.monitor: Any = None
        self.sent = 0  # monitor findings already sent to the driver
        self.chance: dict[str, float] | None = None  # the trivial baseline's levels, made once
        self.trial_number = -1
        self.memory: Any = None  # the running trial's memory_growth check
        self.watchdog: watchdog.Watchdog | None = None
        if dumps is not None:
            try:
                self.watchdog = watchdog.install(
                    Path(dumps),
                    actor_key(),
                    float(probe_settings.get("watchdog_floor_s", 60.0)),
                    float(probe_settings.get("watchdog_factor", 20.0)),
                    probe_settings.get("watchdog_s"),
                )
            except OSError as e:  # a node that cannot write the driver's folder: unwatched
                print(f"sweeper: no watchdog on this worker ({e})", flush=True)

    def _arm(self, what: str) -> None:
        if self.watchdog is not None:
            self.watchdog.arm(what)

    def _disarm(self) -> None:
        if self.watchdog is not None:
            self.watchdog.disarm()

    # -- setup -------------------------------------------------------------------------------
    def _ensure(self) -> None:
        if self.task is not None:
            return
        import torch

        from sweeper.task import add_search_paths, load_task
        from sweeper.training import Data

        torch.set_num_threads(max(1, int(self.cpus)))
        add_search_paths(self.search_paths)
        gpu_ids = ray.get_gpu_ids() if ray.is_initialized() else []
        if gpu_ids and torch.cuda.is_available():
            # Ray sets CUDA_VISIBLE_DEVICES to the GPU it assigned, so that GPU is cuda:0 here.
            self.device = torch.device("cuda", 0)
        else:
            self.device = torch.device("cpu")
        self.task = load_task(self.task_ref, self.task_args)
        # a task that trains itself (fit) may give no data: its gate skips the data probes
        self.data = (
            Data.of(self.task, self.device)
            if self.task.train is not None and self.task.val is not None
            else None
        )

    def load(self) -> Loaded:
        """Import the task and put its data on the device; the error text on failure."""
        try:
            self._ensure()
        except Exception as e:
            from sweeper.errors import TaskError

            return Loaded(error=str(e) if isinstance(e, TaskError) else _error_text(e))
        return Loaded(worker=self.worker())

    def worker(self) -> WorkerInfo:
        """Where trials run: device (with the GPU's name), Ray node, process, torch version."""
        import torch

        device = str(self.device) if self.device is not None else "not set up"
        if self.device is not None and self.device.type == "cuda":
            device += f" ({torch.cuda.get_device_name(self.device)})"
        return WorkerInfo(
            device=device,
            gpu_ids=[str(g) for g in ray.get_gpu_ids()] if ray.is_initialized() else [],
            node=ray.get_runtime_context().get_node_id() if ray.is_initialized() else "",
            pid=os.getpid(),
            torch=torch.__version__,
        )

    def _context(self, params: dict[str, Any], seed: int) -> Any:
        from sweeper.probes import Context, Settings

        return Context(
            task=self.task,
            data=self.data,
            params=params,
            device=self.device,
            settings=Settings(**self.probe_settings),
            seed=seed,
        )

    # -- the gate ----------------------------------------------------------------------------
    def gate_start(self, params: dict[str, Any], init_schemes: list[str]) -> GateStarted:
        """Start the study gate in a thread of this worker (see `GateThread`)."""
        try:
            self._ensure()
        except Exception as e:
            return GateStarted(error=_error_text(e))

        def run(progress: Any, starting: Any) -> Any:
            from torch.nn.modules.module import register_module_forward_hook

            from sweeper.probes import Settings, init_profiles, run_gate

            def beat_then(fn: Any) -> Any:
                def call(*a: Any) -> Any:
                    watchdog.beat()
                    return fn(*a)

                return call

            def entering(name: str) -> None:
                if self.watchdog is not None:
                    self.watchdog.doing(name)  # a crash's dump names the probe it died in
                starting(name)

            self._arm("the study gate")
            # every forward of every module is progress while the gate runs (its probes
            # make forwards without steps); trials beat on steps and the watched model only
            hook = register_module_forward_hook(lambda *_: watchdog.beat())
            try:
                report = run_gate(
                    self.task,
                    params=params,
                    settings=Settings(**self.probe_settings),
                    device=self.device,
                    data=self.data,
                    progress=beat_then(progress),
                    starting=beat_then(entering),
                )
                entering("init_profiles")
                try:  # a plot's data, not a verdict
                    report.init_profiles = init_profiles(self._context(params, 0), init_schemes)
                except Exception:
                    report.init_profiles = {}
                return report
            finally:
                hook.remove()
                self._disarm()

        self._gate = GateThread(run, _error_text)
        return GateStarted()

    def gate_poll(self, wait_s: float) -> GatePoll:
        """The gate's progress (see `GateThread.poll`); `lost` from a worker that has no gate
        running (restarted after a crash)."""
        gate = getattr(self, "_gate", None)
        return GatePoll(lost=True) if gate is None else gate.poll(wait_s)

    # -- one trial ---------------------------------------------------------------------------
    def start(
        self,
        number: int,
        params: dict[str, Any],
        epochs: int,
        first_epoch: bool = False,
        resume: dict[str, Any] | None = None,
    ) -> TrialUpdate:
        """Set up trial `number` (per-trial start probes, then its training code in a thread);
        with `first_epoch`, also return its first report in the same call. `resume`: the
        checkpoints of the run this trial continues ({"trial": n, "checkpoints": [{"id",
        "epoch"}, ...]}, newest first); the first that loads whole is used."""
        out = self._start(number, params, epochs, resume)
        if not first_epoch or out.ended:
            return out
        return out.then(self.epoch())

    def _load_resume(self, resume: dict[str, Any] | None) -> tuple[Any, list[str]]:
        """The newest whole checkpoint of `resume` (or None) and notes on those skipped."""
        from sweeper.checkpoint import CorruptCheckpoint, unpack

        notes: list[str] = []
        if not resume or self.checkpoints is None:
            return None, notes
        for ck in resume.get("checkpoints", []):
            try:
                state = unpack(self.checkpoints.read(ck["id"]), weights_only=False)
                return state, notes
            except CorruptCheckpoint as e:
                notes.append(f"checkpoint {ck['id']} (epoch {ck['epoch']}) is damaged ({e})")
            except Exception as e:  # missing file, unreachable store, unpicklable state
                notes.append(
                    f"checkpoint {ck['id']} (epoch {ck['epoch']}) could not be read "
                    f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                )
        return None, notes

    def _start(
        self, number: int, params: dict[str, Any], epochs: int, resume: dict[str, Any] | None
    ) -> TrialUpdate:
        import torch

        from sweeper.orchestrator._session import Session
        from sweeper.probes import trial_start_checks
        from sweeper.training import Trial, builtin_fit

        t0 = time.perf_counter()
        self._end_session()
        self.params = params
        self._arm(f"trial {number}")
        try:
            self._ensure()
            findings = []
            self.start_probe_s = 0.0
            checked = self.trial_probes and self.task.has_data
            if checked:
                findings = trial_start_checks(self._context(params, seed=number))
                self.start_probe_s = time.perf_counter() - t0
                failed = [f for f in findings if f.verdict == "fail"]
                if failed:
                    self._disarm()
                    return TrialUpdate(
                        stopped=f"{failed[0].probe}: {failed[0].hint}",
                        findings=list(findings),
                        probe_seconds=self.start_probe_s,
                    )
            monitor = self._monitor(params, number, epochs, first_forward=not checked)
            self.monitor, self.sent, self.trial_number = monitor, 0, number
            self.memory = self._memory_check()
            saver = self._saver(number)
            state, notes = self._load_resume(resume)
            fn = self.task.fit or builtin_fit(self.task, self.data)
            torch.manual_seed(number)
            costs = self._costs()
            self.session = Session(
                fn,
                params,
                lambda reporter: Trial(
                    params,
                    number,
                    self.device,
                    epochs,
                    reporter,
                    monitor,
                    saver,
                    state,
                    costs=costs,
                ),
                stopped=lambda: monitor.stopped if monitor is not None else None,
            )
            out = TrialUpdate(
                findings=list(findings),
                probe_seconds=self.start_probe_s,
                worker=self.worker(),
                notes=notes,
            )
            if state is not None and resume:
                out.resumed_epoch = int(state["epoch"])
            elif resume:
                out.notes = [*notes, "no checkpoint could be used: the trial starts afresh"]
            if self.watchdog is not None:
                self.watchdog.pause()  # until `epoch` lets the trial go on
            return out
        except Exception as e:
            self.session = None
            self._disarm()
            return TrialUpdate(error=_error_text(e, params), worker=self.worker())

    def _costs(self) -> Any:
        """The trial's cost measures (None when the study names no cost metric)."""
        if self.costs is None:
            return None
        from sweeper.training._costs import Costs

        return Costs(self.costs["metrics"], int(self.costs.get("batch", 1)), self.device)

    def _memory_seen(self, out: TrialUpdate) -> Any:
        """The memory after this epoch (kept on `out`), judged: the memory_growth warning,
        or None."""
        from sweeper.probes import rss_mb

        out.rss_mb = rss_mb()
        return self.memory.see(out.rss_mb) if self.memory is not None else None

    def _memory_check(self) -> Any:
        """The trial's memory_growth check (None when per-trial probes are off)."""
        from sweeper.probes import MemoryGrowth

        return MemoryGrowth() if self.trial_probes else None

    def _monitor(
        self, params: dict[str, Any], number: int, epochs: int, first_forward: bool
    ) -> Any:
        """The trial monitor for this trial's params (None when per-trial probes are off)."""
        from sweeper.probes import TrialMonitor, chance_levels, untrained_loss

        if not self.trial_probes:
            return None
        ctx = self._context(params, seed=number)
        if self.chance is None:
            self.chance = chance_levels(ctx) if self.task.has_data else {}
        return TrialMonitor(
            ctx.settings,
            first_forward=first_forward,
            init=str(params.get("init", "none")),
            expected_loss=untrained_loss(self.task),
            chance=self.chance,
            epochs=epochs,
            own_loop=self.task.fit is not None,
        )

    def epoch(self) -> TrialUpdate:
        """Let the trial train on to its next report."""
        if self.session is None:
            return TrialUpdate(error="runner lost its trial (restarted?); the trial must be re-run")
        t0 = time.perf_counter()
        watchdog.beat()  # the trial goes on: silence counts from here
        event = self.session.resume()
        out = TrialUpdate(seconds=time.perf_counter() - t0)
        if self.saver is not None:
            out.saved = self.saver.drain()
            out.checkpoint_seconds = self.saver.seconds
        if self.monitor is not None:
            out.probe_seconds = self.start_probe_s + self.monitor.seconds
            new = self.monitor.findings[self.sent :]  # each finding goes to the driver once
            self.sent = len(self.monitor.findings)
            out.findings = list(new)
        if event.kind == "report":
            out.metrics = event.metrics
            grown = self._memory_seen(out)
            if grown is not None:
                out.findings.append(grown)
            return out
        self._disarm()
        self._end_session()
        if event.kind == "stopped":
            out.stopped = event.reason
        elif event.kind == "done":
            out.done = True
        else:
            assert event.error is not None
            out.error = _error_text(event.error, self.params)
        return out

    def _saver(self, number: int) -> Any:
        from sweeper.checkpoint import Checkpoints, Saver

        ck = self.checkpoint
        if not ck:
            self.saver = None
            return None
        if self.checkpoints is None:
            self.checkpoints = Checkpoints(ck["location"], ck["study"])
        self.saver = Saver(self.checkpoints, number, ck["every_epochs"], ck["keep_weights"])
        return self.saver

    def _end_session(self) -> None:
        if self.session is not None and not self.session.stop():
            # code that ignores TrialStopped keeps its thread; say so where the user looks
            print(
                f"sweeper: trial {self.trial_number}'s training code did not stop within 60 s "
                "of being told to; let sweeper.TrialStopped propagate out of your fit function",
                flush=True,
            )
        self.session = None

    def finish(self) -> None:
        """End the running trial (if any) and free the device's cached memory."""
        self._disarm()
        self._end_session()
        self.monitor = None
        if self.device is not None and self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()


def actor_key() -> str:
    """This runner's name in its dump files: its Ray actor id (kept across Ray's restarts of
    it; the driver reads it from the handle), or the process id outside an actor."""
    try:
        key = ray.get_runtime_context().get_actor_id() if ray.is_initialized() else None
    except Exception:
        key = None
    return str(key or f"pid{os.getpid()}")


def remote_runner(cpus: float, gpus: float) -> Any:
    """The runner as a Ray actor class with the trial's resources. A worker that dies is
    restarted by Ray; the driver re-runs the trial it held."""
    return ray.remote(num_cpus=cpus, num_gpus=gpus, max_restarts=3, max_task_retries=0)(TrialRunner)
