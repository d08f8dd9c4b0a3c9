"""`Store`: one study store, derived from its URL once, opened at most once, passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweeper.errors import StoreFaultError
from sweeper.store._storage import artifact_dir, open_storage, sqlite_path


@dataclass
class Store:
    """A study store: its URL, its SQLite file (None for a database server or in-memory
    SQLite), the folder of its artifacts (gate plots, checkpoints, kept weights), and the
    Optuna storage once `open` has opened it. Paths stay as written: a relative SQLite file
    means the file in the working directory at the time it is opened."""

    url: str
    sqlite: Path | None
    artifacts: Path
    _storage: Any = field(default=None, repr=False)

    @classmethod
    def at(cls, url: str, artifacts: str | None = None) -> Store:
        """The store at `url`, with the definition's `artifacts:` folder if it names one."""
        return cls(url, sqlite_path(url), artifact_dir(url, artifacts))

    def check_folder(self) -> None:
        """A SQLite store whose folder does not exist cannot be created: say so before
        anything starts."""
        path = self.sqlite
        if path is not None and str(path.parent) not in ("", ".") and not path.parent.exists():
            raise StoreFaultError(
                f"folder {str(path.parent)!r} of the SQLite store {str(path)!r} does not exist: "
                "create it (mkdir -p), or point storage: at an existing folder"
            )

    def check_server(self, timeout_s: int = 5) -> None:
        """A database server store answers and takes the login, within `timeout_s`: said
        before Ray starts, with nothing written (SQLite has no server: nothing to check)."""
        if self.sqlite is not None or self.url.startswith("sqlite"):
            return
        import sqlalchemy

        from sweeper._redact import redact
        from sweeper.errors import StoreUnreachableError

        args = {"connect_timeout": timeout_s} if self.url.startswith(("postgres", "mysql")) else {}
        try:
            engine = sqlalchemy.create_engine(self.url, connect_args=args, poolclass=_null_pool())
        except Exception as e:  # a driver that is not installed, a malformed URL
            raise StoreUnreachableError(
                f"cannot use store {redact(self.url)}: {_first(e)}"
            ) from None
        try:
            with engine.connect():
                pass
        except Exception as e:
            raise StoreUnreachableError(
                f"cannot reach store {redact(self.url)}: {_first(e)}. Start the database "
                "server or fix storage: (host, port, user, password, database) in the "
                "definition or --storage; nothing was written"
            ) from None
        finally:
            engine.dispose()

    def may_hold_studies(self) -> bool:
        """Whether the store exists with Optuna's tables (read without creating anything)."""
        if self.sqlite is not None:
            return self.sqlite.exists()
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.url)
        try:
            return bool(sqlalchemy.inspect(engine).has_table("studies"))
        finally:
            engine.dispose()

    @property
    def is_open(self) -> bool:
        """Whether `open` has opened it (and `forget` not dropped it since)."""
        return self._storage is not None

    def open(self) -> Any:
        """The Optuna RDB storage (heartbeats on), opened on the first call."""
        if self._storage is None:
            self._storage = open_storage(self.url)
        return self._storage

    def forget(self) -> None:
        """Drop the opened storage, so the next `open` opens it again (after the working
        directory moved, a relative SQLite path means another file)."""
        self._storage = None


def _null_pool() -> Any:
    from sqlalchemy.pool import NullPool

    return NullPool


def _first(e: BaseException) -> str:
    """The first line of an error that says something (drivers put the cause on line 1)."""
    cause = e.__cause__ or e
    lines = [ln.strip() for ln in str(getattr(cause, "orig", None) or cause).splitlines()]
    return next((ln for ln in lines if ln), type(e).__name__)
