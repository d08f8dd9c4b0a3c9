"""The real services the tests talk to, set up when the machine lacks them.

PostgreSQL: the server at SWEEPER_TEST_PG (default postgresql://postgres@127.0.0.1:5432) when
one answers there; otherwise a throwaway server started on that port, with Debian's (or any)
PostgreSQL binaries through pytest-postgresql's process executor, and removed at the end. As
root the server runs as the `postgres` user (PostgreSQL refuses to run as root).

Chromium: Debian's package, installed with apt-get (as root, or through passwordless sudo) when
/usr/bin/chromium is missing. Playwright drives it; its own browser download is never used.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432"
CHROMIUM = "/usr/bin/chromium"


class ServiceError(RuntimeError):
    """A service the tests need is missing and cannot be set up here; says how to fix it."""


@dataclass
class PgServer:
    url: str  # postgresql+psycopg://USER@HOST:PORT, no database
    restart: Callable[[], None] | None  # None: this server cannot be restarted from here


def admin_dsn(url: str) -> str:
    """The libpq address of the server's `postgres` database (for CREATE/DROP DATABASE)."""
    return url.replace("postgresql+psycopg://", "postgresql://") + "/postgres"


def reachable(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(admin_dsn(url), connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _pg_ctl() -> str | None:
    found = shutil.which("pg_ctl")
    if found:
        return found
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version)
    return versions[-1] if versions else None


def _version(path: str) -> float:
    try:
        return float(Path(path).parents[1].name)
    except ValueError:
        return 0.0


def _system_restart() -> Callable[[], None] | None:
    """Restarting the machine's own cluster (Debian's pg_ctlcluster, as root)."""
    ctl = shutil.which("pg_ctlcluster")
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if ctl is None or not versions or os.geteuid() != 0:
        return None
    cmd = [ctl, "--skip-systemctl-redirect", versions[-1], "main"]

    def restart() -> None:
        try:
            subprocess.run([*cmd, "restart"], check=True, timeout=120)
        finally:
            subprocess.run([*cmd, "start"], capture_output=True, timeout=120)  # never left down

    return restart


@contextmanager
def postgres() -> Iterator[PgServer]:
    """The PostgreSQL server for this test session."""
    from sqlalchemy.engine import make_url

    url = os.environ.get("SWEEPER_TEST_PG", PG_DEFAULT)
    if reachable(url):
        yield PgServer(url, _system_restart())
        return
    parsed = make_url(url)
    host, port = parsed.host or "127.0.0.1", parsed.port or 5432
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ServiceError(
            f"no PostgreSQL server answers at {url}; start it or unset SWEEPER_TEST_PG"
        )
    pg_ctl = _pg_ctl()
    if pg_ctl is None:
        raise ServiceError(
            f"no PostgreSQL server answers at {url} and no PostgreSQL binaries are installed to "
            "start one: apt-get install postgresql (the tests start and remove their own "
            "server), or point SWEEPER_TEST_PG at a server"
        )
    from pytest_postgresql.executors import PostgreSQLExecutor

    base = Path(tempfile.mkdtemp(prefix="sweeper-test-pg-"))
    executable = pg_ctl
    if os.geteuid() == 0:  # PostgreSQL will not run as root: run it as the postgres user
        owner = pwd.getpwnam("postgres")
        os.chown(base, owner.pw_uid, owner.pw_gid)
        base.chmod(0o755)
        wrapper = base / "pg_ctl"
        wrapper.write_text(f'#!/bin/sh\nexec runuser -u postgres -- "{pg_ctl}" "$@"\n')
        wrapper.chmod(0o755)
        executable = str(wrapper)
    server = PostgreSQLExecutor(
        executable=executable,
        host=host,
        port=port,
        datadir=str(base / "data"),
        unixsocketdir=str(base),
        logfile=str(base / "server.log"),
        startparams="-w",
        dbname="postgres",
        user=parsed.username or "postgres",
    )
    server.start()

    def restart() -> None:
        subprocess.run([executable, "restart", "-D", server.datadir, "-w", "-m", "f"], check=True)

    try:
        yield PgServer(url, restart)
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)


def ensure_chromium() -> str:
    """/usr/bin/chromium, installed from Debian's packages if it is missing."""
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    if shutil.which("apt-get") is None:
        raise ServiceError("headless Chromium is missing and this is not a Debian system")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["update", "-qq"], ["install", "-y", "-qq", "chromium"]):
        done = subprocess.run(
            [*sudo, "apt-get", *args], env=env, capture_output=True, text=True, timeout=900
        )
        if done.returncode != 0:
            raise ServiceError(
                f"headless Chromium is missing and `apt-get {' '.join(args)}` failed "
                f"({done.stderr.strip()[-300:]}); install it: apt-get install chromium"
            )
    return CHROMIUM
