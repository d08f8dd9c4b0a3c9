"""Connecting to Ray: local by default, an existing cluster with an address, or the cluster a
Ray job runs on. Decides how many trials run at once from what the cluster has."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sweeper.definition import Definition
from sweeper.errors import ClusterError, SweeperError
from sweeper.orchestrator import _leftovers as leftovers

log = logging.getLogger("sweeper")

# Never shipped to the cluster with the user's code.
EXCLUDES = [".git", ".venv", "venv", "__pycache__", "*.db", "*.db-*", "node_modules", "*.pt"]


def code_folder(task_ref: str, search_paths: list[str]) -> str | None:
    """The folder to ship to a remote cluster so workers can import the task module: the
    search path it was found in, or None when it comes from an installed package."""
    import importlib.util

    module = task_ref.partition(":")[0]
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    origin = Path(spec.origin).resolve() if spec and spec.origin else None
    if origin is None:
        return None
    for folder in search_paths:
        root = Path(folder).resolve()
        if root in origin.parents:
            return str(root)
    return None


def init_ray(address: str | None, task_ref: str, search_paths: list[str]) -> None:
    """Start Ray locally, or connect to `address` ("auto", "ray://HOST:10001", "HOST:6379").
    On a cluster, the folder holding the task module travels as Ray's working_dir."""
    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {
        "logging_level": logging.WARNING,
        "log_to_driver": True,
        "include_dashboard": False,
        "configure_logging": True,
    }
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    # a call left unread on a worker that died (a `finish` sent as a trial ends) is expected
    # when workers die; sweeper reads every answer that matters and handles its error itself
    os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")
    if address is None and os.environ.get("RAY_ADDRESS"):
        # inside a Ray job: the job's runtime env (with the user's code) is already in place
        kwargs.pop("include_dashboard")
    elif address:
        kwargs["address"] = address
        kwargs.pop("include_dashboard")
        folder = code_folder(task_ref, search_paths)
        if folder is not None:
            kwargs["runtime_env"] = {"working_dir": folder, "excludes": EXCLUDES}
    else:
        # "local": always a new local instance, never a cluster some `ray start` left running
        kwargs["address"] = "local"
        gone = leftovers.reap()
        if gone:
            log.warning(
                "ended the Ray processes left running by an earlier local run that was killed "
                "(driver pid %s)",
                ", ".join(map(str, gone)),
            )
        leftovers.mark()
        if os.environ.get("SWEEPER_RAY_DASHBOARD") == "1":
            kwargs["include_dashboard"] = True
        else:
            _no_api_server()
        # Ray's note that its token authentication is on says nothing to act on for a cluster
        # of this one process tree; on a real cluster it is left as Ray prints it
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
            logging.ERROR
        )
        kwargs["num_cpus"] = os.cpu_count() or 1
    _quiet_replaced()
    if not _terminal():
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # no colour codes in a file or pipe
    try:
        ray.init(**kwargs)
    except ConnectionError as e:
        raise SweeperError(
            f"cannot connect to the Ray cluster at {address!r}: {e}. Check the address "
            "(`ray status` on the head node prints it) or leave out --address to run locally"
        ) from None


def _terminal() -> bool:
    try:
        return bool(sys.stdout.isatty() and sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


def _no_api_server() -> None:
    """Start no Ray dashboard process for a local run. With `include_dashboard=False` Ray
    still starts its API server (about 115 MB and 1.3 s of `ray.init` on 2 cores) for the
    job and state APIs, which a local run never uses. Ray's own flag is honoured: the server
    is skipped only when the dashboard is off. SWEEPER_RAY_DASHBOARD=1 starts it."""
    try:
        from ray._private.node import Node
    except ImportError:  # another Ray layout: its default is kept
        return
    start = getattr(Node, "start_api_server", None)
    if start is None or getattr(start, "_sweeper", False):
        return

    def start_api_server(self: Any, *, include_dashboard: Any, raise_on_failure: Any) -> Any:
        if include_dashboard is False:
            return None
        return start(self, include_dashboard=include_dashboard, raise_on_failure=raise_on_failure)

    start_api_server._sweeper = True  # type: ignore[attr-defined]
    Node.start_api_server = start_api_server  # type: ignore[method-assign]


# Ray's own messages that sweeper replaces with its own note on the trial concerned (kept
# at debug level in sweeper's log): a dead worker is failed, re-queued and revived by sweeper.
REPLACED = ("A worker died or was killed while executing a task by an unexpected system error",)
# The first line of a dying worker's dump: Ray's C++ signal handler, Python's faulthandler.
# sweeper names the crash from the worker's own dump file; the raw dump stays off the console.
DUMP_START = ("*** SIG", "Fatal Python error:")
SHOW_ENV = "SWEEPER_SHOW_OUTPUT"
WORKER_LOG: dict[str, Any] = {
    "path": None,
    "dumping": set(),
    "told": False,
    "show": False,
    "held": None,  # lines kept in memory until the run may write (`worker_log_ready`)
}
HELD_LINES = 5000  # at most, before the run may write; older ones are dropped


def worker_log(path: Path | None, show: bool | None = None) -> None:
    """Where the workers' output goes instead of the console: the task's prints, its
    frameworks' banners and warnings, Ray's own (its autoscaler's status), a dying worker's
    dump. `show` (default: the SWEEPER_SHOW_OUTPUT environment variable is 1; `sweeper run
    --show-output` sets it) prints the task's output on the console as Ray forwards it; a
    dump is kept off it either way. Nothing is written before `worker_log_ready`: a run that
    fails at its start leaves no folder behind."""
    if show is None:
        show = os.environ.get(SHOW_ENV) == "1"
    WORKER_LOG.update(path=path, dumping=set(), told=False, show=show, held=[])


def worker_log_ready() -> None:
    """The run's start is known good (its study is open): the lines held so far are
    written, and every later one as it comes."""
    held = WORKER_LOG["held"]
    WORKER_LOG["held"] = None
    if held:
        _write_kept(held, dump=False)


def _write_kept(lines: list[str], dump: bool) -> bool:
    """Append `lines` to the worker log (held in memory until the run may write); the log's
    path is said once. False when it cannot be written (then they are shown)."""
    held = WORKER_LOG["held"]
    if held is not None:
        held.extend(lines)
        del held[:-HELD_LINES]
        return True
    path = WORKER_LOG["path"]
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.writelines(f"{ln}\n" for ln in lines)
    except OSError:
        return False  # nowhere to keep it: shown as Ray prints it
    if not WORKER_LOG["told"]:
        WORKER_LOG["told"] = True
        log.warning(
            "the workers' output (%s) is kept in %s%s",
            "a crash's dump; sweeper names the crash"
            if dump
            else "the task's prints, its frameworks' banners and warnings, Ray's own",
            path,
            "" if dump else "; `sweeper run --show-output` prints it here",
        )
    return True


def _keep_off_console(data: dict[str, Any]) -> bool:
    """Whether `data` (lines one worker printed) goes to the worker log, its path printed
    once, instead of the console: a dying worker's dump always, anything else unless the
    user asked to see the task's output."""
    pid = data.get("pid")
    lines = [str(ln) for ln in data.get("lines") or []]
    dumping: set[Any] = WORKER_LOG["dumping"]
    dump = pid in dumping or any(ln.lstrip().startswith(DUMP_START) for ln in lines)
    if dump:
        dumping.add(pid)  # a worker that began dying: the rest of what it prints is its dump
    elif WORKER_LOG["show"]:
        return False
    if WORKER_LOG["path"] is None:
        return dump  # no study folder (Ray started outside a run): only a dump is hidden
    return _write_kept([f"(pid={pid}) {ln}" for ln in lines], dump)


@contextlib.contextmanager
def warnings_kept() -> Iterator[None]:
    """While a run goes on, Python warnings raised in this process (the task's frameworks
    import here too) go to the same worker log as the workers' output, unless the user
    asked to see the task's output; before the run knows its log folder they show as usual."""
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def keep(message: Any, category: Any, filename: str, lineno: int, *rest: Any) -> None:
            if WORKER_LOG["show"] or WORKER_LOG["path"] is None:
                shown(message, category, filename, lineno, *rest)
                return
            text = warnings.formatwarning(message, category, filename, lineno).rstrip("\n")
            if not _write_kept([f"(driver) {ln}" for ln in text.splitlines()], dump=False):
                shown(message, category, filename, lineno, *rest)

        warnings.showwarning = keep  # type: ignore[assignment]
        yield


def _quiet_replaced() -> None:
    """Keep the raylet messages in REPLACED and dying workers' dumps out of the driver's
    output; every other line Ray forwards to the driver is printed as Ray prints it, without
    colour codes when the output is not a terminal."""
    try:
        from ray._private import worker
    except ImportError:
        return
    show = getattr(worker, "print_to_stdstream", None)
    if show is None or getattr(show, "_sweeper", False):
        return

    def print_to_stdstream(data: dict[str, Any], ignore_prefix: bool) -> None:
        lines = data.get("lines") or []
        if data.get("pid") == "raylet" and lines and str(lines[0]).startswith(REPLACED):
            log.debug("Ray: %s", lines[0])
            return
        if _keep_off_console(data):
            return
        show(data, ignore_prefix=ignore_prefix)

    print_to_stdstream._sweeper = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = print_to_stdstream


def concurrency(spec: Definition) -> int:
    """How many trials run at once: what the cluster fits, capped by max_concurrent and the
    budget."""
    import ray

    res = ray.cluster_resources()
    fits = math.floor(res.get("CPU", 0) / spec.resources.cpus + 1e-9)
    if spec.resources.gpus > 0:
        fits = min(fits, math.floor(res.get("GPU", 0) / spec.resources.gpus + 1e-9))
        if fits < 1:
            raise ClusterError(
                f"resources.gpus is {spec.resources.gpus:g} but the Ray cluster has "
                f"{res.get('GPU', 0):g} GPUs; set resources.gpus: 0 to run on CPUs"
            )
    if fits < 1:
        raise ClusterError(
            f"resources.cpus is {spec.resources.cpus:g} but the Ray cluster has "
            f"{res.get('CPU', 0):g} CPUs; lower resources.cpus or add nodes"
        )
    limit = spec.resources.max_concurrent or fits
    return max(1, min(limit, fits, spec.budget.trials))
