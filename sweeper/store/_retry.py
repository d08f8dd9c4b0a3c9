"""Ride out a store that is briefly unreachable: a restarted PostgreSQL, a busy SQLite file.

Only connection-level errors are retried; a constraint violation or bad data fails at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sweeper._redact import redact
from sweeper.errors import StoreError, StoreFaultError

T = TypeVar("T")
log = logging.getLogger("sweeper")

OUTAGE_S = 300.0  # how long the driver waits for the store to come back before it gives up


def is_transient(error: BaseException) -> bool:
    """True for errors that a reconnect can fix: lost connections, a server starting up,
    a locked SQLite file. Walks the cause chain (Optuna wraps SQLAlchemy's errors)."""
    from sqlalchemy import exc

    seen: set[int] = set()
    cur: BaseException | None = error
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, exc.OperationalError) and "sqlite" in type(cur.orig).__module__:
            # SQLite reports bad SQL and missing tables as OperationalError too: only a busy
            # or briefly unopenable file is worth waiting for
            text = str(cur.orig).lower()
            return "locked" in text or "busy" in text or "unable to open" in text
        if isinstance(cur, (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError)):
            return True
        if isinstance(cur, exc.DBAPIError) and cur.connection_invalidated:
            return True
        if "database is locked" in str(cur):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


_STORE = {"where": "the study store"}  # set by open_storage: the one store this process writes


def describe_store(where: str) -> None:
    """Name the store in the messages below: the SQLite file's path, or the redacted URL."""
    _STORE["where"] = where


def store_fault(error: BaseException) -> str | None:
    """'full' or 'read-only' when the store cannot write for a reason only the user can fix
    (a full disk, a file or folder without write permission); None otherwise."""
    seen: set[int] = set()
    cur: BaseException | None = error
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = str(cur).lower()
        if "disk is full" in text or "no space left" in text or "diskfull" in text:
            return "full"
        if "readonly database" in text or "read-only" in text:
            return "read-only"
        cur = cur.__cause__ or cur.__context__
    return None


def fault_error(error: BaseException, what: str) -> StoreFaultError | None:
    """The message for a store that cannot write (see `store_fault`), or None."""
    fault = store_fault(error)
    return None if fault is None else store_error(fault, first_line(error), what)


def store_error(fault: str, detail: str, what: str) -> StoreFaultError:
    """A store that cannot write ('full' or 'read-only'), named, with the fix."""
    where = _STORE["where"]
    if fault == "full":
        return StoreFaultError(
            f"the disk holding the study store {where} is full ({detail}) while {what}. "
            "Trials already recorded are safe: free space on that disk (or set `storage:` "
            "to a store elsewhere), then run the same command to resume."
        )
    return StoreFaultError(
        f"the study store {where} is not writable ({detail}) while {what}. Give this user "
        "write permission on the file and its folder (SQLite writes -wal and -shm files "
        "beside it) or remount the disk read-write, then run the same command to resume."
    )


def first_line(error: BaseException) -> str:
    """The first line of an error's message."""
    text = str(error).strip().splitlines()
    return redact(text[0] if text else type(error).__name__)


def retrying(
    fn: Callable[..., T],
    *args: Any,
    what: str,
    outage_s: float = OUTAGE_S,
    on_outage: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> T:
    """Call `fn(*args, **kwargs)`; while the store is unreachable, wait and call again (backing
    off to one try every 5 s) for up to `outage_s` seconds, then raise StoreError."""
    deadline: float | None = None
    delay = 0.25
    while True:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            if not is_transient(e):
                fault = fault_error(e, what)
                if fault is not None:
                    raise fault from None
                raise
            now = time.monotonic()
            if deadline is None:
                deadline = now + outage_s
                msg = f"store unreachable while {what} ({first_line(e)}); retrying"
                log.warning(msg)
                if on_outage is not None:
                    on_outage(msg)
            if now >= deadline:
                raise StoreError(
                    f"the study store was unreachable for {outage_s:.0f}s while {what}: "
                    f"{first_line(e)}. Finished trials are saved; once the store is back, "
                    "run the same command to resume."
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
