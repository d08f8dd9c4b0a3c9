"""Ride out a store that is briefly unreachable: a restarted PostgreSQL, a busy SQLite file.

Only connection-level errors are retried; a constraint violation or bad data fails at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sweeper._redact import redact
from sweeper.errors import StoreError

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


def first_line(error: BaseException) -> str:
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
