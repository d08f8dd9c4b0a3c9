"""The study store on SQLite and on the real PostgreSQL server: the same tests on both."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from sweeper.errors import StoreError
from sweeper.store import open_storage
from sweeper.store._retry import is_transient, retrying
from tests.conftest import pg_connections, run_cli, wait_until, write_study


def test_storage_is_a_plain_optuna_store(store_url: str) -> None:
    storage = open_storage(store_url)
    study = optuna.create_study(study_name="plain", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    storage.engine.dispose()
    again = optuna.load_study(study_name="plain", storage=store_url)  # Optuna's own way in
    assert len(again.trials) == 3


def test_storage_two_opens_of_a_new_database_do_not_race(store_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        stores = list(pool.map(lambda _: open_storage(store_url), range(4)))
    assert all(s.get_all_studies() == [] for s in stores)
    for s in stores:
        s.engine.dispose()


def test_storage_pool_is_bounded_and_reused(pg_url: str) -> None:
    storage = open_storage(pg_url)
    study = optuna.create_study(study_name="many", storage=storage)
    for _ in range(200):  # ask/tell as the driver does, far more trials than pool slots
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        study.tell(trial, trial.params["x"])
    assert 1 <= pg_connections(pg_url) <= 8
    storage.engine.dispose()
    # a server process ends a moment after its client hangs up: wait for that, briefly
    wait_until("the pool's connections to close", lambda: pg_connections(pg_url) == 0, 10)


def test_storage_sqlite_is_in_wal_mode(tmp_path: Path) -> None:
    open_storage(f"sqlite:///{tmp_path / 's.db'}")
    con = sqlite3.connect(tmp_path / "s.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_storage_errors_never_show_the_password(tmp_path: Path) -> None:
    url = "postgresql+psycopg://sweeper:s3cret-pw@127.0.0.1:1/nowhere"  # nothing listens on 1
    with pytest.raises(StoreError) as err:
        open_storage(url)
    assert "s3cret-pw" not in str(err.value)
    assert "sweeper:***@127.0.0.1:1/nowhere" in str(err.value)
    out = run_cli("status", "x", "--storage", url, cwd=tmp_path)
    assert out.returncode == 1
    assert "s3cret-pw" not in out.stdout + out.stderr
    assert "cannot open store" in out.stderr


def test_storage_retry_waits_out_connection_errors_only() -> None:
    dead = sqlalchemy.create_engine("postgresql+psycopg://postgres@127.0.0.1:1/x")
    with pytest.raises(sqlalchemy.exc.OperationalError) as err:
        dead.connect()
    assert is_transient(err.value)
    with pytest.raises(StoreError, match="unreachable for 1s while testing"):
        retrying(dead.connect, what="testing", outage_s=1)
    # SQLite raises OperationalError for bad SQL too: that one must fail at once
    bad = sqlalchemy.create_engine("sqlite://")
    with pytest.raises(sqlalchemy.exc.OperationalError) as syntax:
        with bad.connect() as con:
            con.execute(sqlalchemy.text("SELEC 1"))
    assert not is_transient(syntax.value)


def test_storage_retry_waits_for_a_locked_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")  # another process writing, as far as SQLite can tell
    engine = sqlalchemy.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.1})
    with pytest.raises(sqlalchemy.exc.OperationalError) as locked:
        with engine.connect() as con:
            con.execute(sqlalchemy.text("SELECT * FROM t"))
    assert is_transient(locked.value)
    holder.rollback()


def test_storage_password_stays_out_of_output_and_store(tmp_path: Path, pg_url: str) -> None:
    # trust auth ignores the password, so the run works and every output can be checked
    url = pg_url.replace("postgres@", "postgres:pw-do-not-show@")
    write_study(
        tmp_path, name="secret", trials=2, epochs=1, storage=url, extra="probes: {gate: off}\n"
    )
    run = run_cli("run", "secret.yaml", "--plain", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    status = run_cli("status", "secret", "--storage", url, cwd=tmp_path)
    best = run_cli("best", "secret", "--storage", url, cwd=tmp_path)
    for out in (run, status, best):
        assert "pw-do-not-show" not in out.stdout + out.stderr
    assert "postgres:***@" in run.stdout
    study = optuna.load_study(study_name="secret", storage=pg_url)
    stored = study._storage.get_study_system_attrs(study._study_id)["sweeper:definition"]
    assert "pw-do-not-show" not in stored and "postgres:***@" in stored
