from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState

from tests import services
from tests.services import PgServer

ROOT = Path(__file__).resolve().parents[1]


def run_cli(
    *args: str, cwd: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real `sweeper` CLI in a subprocess, as a user runs it."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "sweeper", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_study(
    folder: Path,
    name: str = "tiny",
    trials: int = 6,
    epochs: int = 3,
    task: str = "sweeper.examples.digits:mlp_task",
    extra: str = "",
    search: str | None = None,
    storage: str = "sqlite:///sweeps.db",
    budget_extra: str = "",
) -> Path:
    search = (
        search
        or """
      lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
      batch_size: {type: categorical, choices: [64, 128]}
      dropout: {type: float, low: 0.0, high: 0.2}
      init: {type: categorical, choices: [default, kaiming_normal]}
      hidden: 64
    """
    )
    text = (
        textwrap.dedent(f"""\
        name: {name}
        task: {task}
        storage: {storage}
        budget: {{trials: {trials}, epochs: {epochs}{budget_extra}}}
        sampler: {{type: tpe, seed: 0, startup_trials: 3}}
        pruner: {{type: none}}
        search:
        """)
        + textwrap.indent(textwrap.dedent(search).strip("\n"), "  ")
        + "\n"
        + textwrap.dedent(extra)
    )
    for section in ("sampler", "pruner"):  # `extra` may replace a default section
        if f"\n{section}:" in "\n" + textwrap.dedent(extra):
            text = "".join(
                line
                for line in text.splitlines(keepends=True)
                if not line.startswith(f"{section}: ") or line in textwrap.dedent(extra)
            )
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


# -- the test process's own end ---------------------------------------------------------------
# This process hosts many Ray sessions in turn (a `local_ray` per module, `ray.cluster_utils`
# clusters), Chromium's driver and the user code of in-process runs. Restarting Ray in one
# process leaves core-worker state that background threads may still touch (ray-project/ray
# #31145), and CI once saw this process die of SIGSEGV after its last line ("496 passed"),
# while Python tore it down. That teardown tests nothing: once every result is reported and
# every fixture has finished, the process ends with pytest's own exit status, skipping it. A
# crash before that point still shows, with every thread's stack on stderr.
_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import faulthandler

    _EXIT_STATUS.append(int(exitstatus))
    faulthandler.enable(file=sys.__stderr__, all_threads=True)  # a watchdog may have moved it


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if not _EXIT_STATUS or getattr(config, "workerinput", None) is not None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_EXIT_STATUS[-1])


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- study stores: every store test runs on SQLite and on a real PostgreSQL server ------------
@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The server at SWEEPER_TEST_PG (default 127.0.0.1:5432), or a throwaway one started on
    that port when none answers there (tests/services.py)."""
    try:
        with services.postgres() as server:
            yield server
    except services.ServiceError as e:
        pytest.fail(str(e))


def _pg_admin(server: str) -> Any:
    import psycopg

    try:
        return psycopg.connect(services.admin_dsn(server), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        pytest.fail(
            f"the PostgreSQL server for the store tests stopped answering at {server} ({e})"
        )


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"sweeper_test_{uuid.uuid4().hex[:10]}"
    with _pg_admin(pg_server.url) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{pg_server.url}/{name}"
    finally:
        with _pg_admin(pg_server.url) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_connections(url: str) -> int:
    """How many server connections are open to the database of `url`."""
    server, db = url.rsplit("/", 1)
    with _pg_admin(server) as con:
        row = con.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (db,))
        return int(row.fetchone()[0])  # type: ignore[index]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a SQLite file and on a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sweeps.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray for a module's in-process runs (`run_here`), started the way `sweeper run`
    starts it, so each run there skips Ray's start-up and shutdown (~4 s each on 2 cores)."""
    import ray
    from ray._private.node import Node

    from sweeper.orchestrator._cluster import init_ray

    api_server = Node.start_api_server  # init_ray turns it off for local runs: put it back
    init_ray(None, "", [])
    try:
        yield
    finally:
        ray.shutdown()
        Node.start_api_server = api_server  # type: ignore[method-assign]


def run_here(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The `sweeper` CLI's own `main` in this process, with its output captured as `run_cli`
    captures it; a `run` uses the module's `local_ray` (the test asks for that fixture). The
    user's modules it imported (from `cwd`) and the folders it added to sys.path are dropped
    afterwards, so the next test imports its own `my_task.py`, not this one's."""
    import contextlib
    import importlib
    import io
    import signal

    from sweeper.cli import main

    out, err = io.StringIO(), io.StringIO()
    path, modules, here = list(sys.path), set(sys.modules), os.getcwd()
    had_ray = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    sigterm = signal.getsignal(signal.SIGTERM)
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    importlib.invalidate_caches()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as e:  # argparse
                code = e.code if isinstance(e.code, int) else 2
    finally:
        if not had_ray and "ray" in sys.modules and sys.modules["ray"].is_initialized():
            sys.modules["ray"].shutdown()  # started by this call (no `local_ray`): not left on
        os.chdir(here)
        signal.signal(signal.SIGTERM, sigterm)
        sys.path[:] = path
        for name in set(sys.modules) - modules:
            if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(cwd)):
                del sys.modules[name]
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return subprocess.CompletedProcess(["sweeper", *args], code, out.getvalue(), err.getvalue())


def start_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """The real CLI in the background, in its own process group (see `kill_group`)."""
    return subprocess.Popen(
        [sys.executable, "-m", "sweeper", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill what a background CLI left behind (a killed driver's local Ray processes)."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=30)


def trials_of(url: str, name: str) -> list[Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(url)
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    finally:
        storage.engine.dispose()  # so connection counts see the drivers' connections only


def wait_until(what: str, check: Any, timeout: float = 120, proc: Any = None) -> Any:
    """Poll `check()` until it returns something truthy; fail after `timeout` seconds, or at
    once if `proc` (a background CLI) exits first."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except KeyError:  # the study is not in the store yet
            value = None
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the CLI exited ({proc.returncode}) before {what}:\n{proc.stdout.read()}")
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


SLOW_TASK = '''
import time
from torch import nn
from sweeper.examples.digits import mlp_task


class Slow(nn.Module):
    """The digits MLP, slowed down so a test can catch a trial in the middle."""

    def __init__(self, inner, delay):
        super().__init__()
        self.inner, self.delay = inner, delay

    def forward(self, x):
        if self.training:
            time.sleep(self.delay)
        return self.inner(x)


def task(delay=0.004):
    t = mlp_task()
    build = t.build_model
    t.build_model = lambda p: Slow(build(p), delay)
    return t
'''


def free_port() -> int:
    """A TCP port nothing listens on right now, on loopback."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- failure tests: slow trials to break in their middle, and what must hold after --------


FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def slow_study(
    folder: Path,
    name: str,
    url: str,
    trials: int,
    epochs: int,
    delay: float = 0.004,
    extra: str = "",
    gate: str = "off",
) -> Path:
    """Trials of `epochs` x about (23 x delay) seconds each, two at a time, no gate unless
    `gate` says so."""
    (folder / "slow_task.py").write_text(SLOW_TASK)
    return write_study(
        folder,
        name=name,
        trials=trials,
        epochs=epochs,
        task="slow_task:task",
        storage=url,
        extra=f"probes: {{gate: {gate}}}\n"
        + f"task_args: {{delay: {delay}}}\nresources: {{cpus: 1, max_concurrent: 2}}\n"
        + extra,
    )


def mid_trial(url: str, name: str) -> Any:
    """A running trial early in its run (1 to 3 epochs reported), whose worker is known: what
    happens to it next happens in its middle."""
    for t in trials_of(url, name):
        if (
            t.state == TrialState.RUNNING
            and 1 <= len(t.intermediate_values) <= 3
            and "sweeper:worker" in t.user_attrs
        ):
            return t
    return None


def assert_final(url: str, name: str, budget: int) -> list[Any]:
    trials = trials_of(url, name)
    assert [t.number for t in trials if t.state == TrialState.RUNNING] == []
    assert [t.number for t in trials if t.state == TrialState.WAITING] == []
    assert len([t for t in trials if t.state in FINISHED]) == budget
    for t in trials:
        if t.state == TrialState.FAIL:
            assert t.user_attrs.get("sweeper:error"), f"trial {t.number} failed with no reason"
    return trials


def run_trial(
    runner: Any, number: int, params: dict[str, Any], epochs: int, resume: Any = None
) -> tuple[Any, list[dict[str, float]], list[dict[str, Any]], Any]:
    """A trial on a real `TrialRunner` (no Ray) to its end, as the search drives it: its start
    update, every epoch's metrics, everything it saved, and its last update."""
    out = first = runner.start(number, params, epochs, True, resume)
    metrics = [first.metrics] if first.metrics is not None else []
    saved = list(first.saved)
    while not out.ended:
        out = runner.epoch()
        saved += out.saved
        if out.metrics is not None:
            metrics.append(out.metrics)
    return first, metrics, saved, out
