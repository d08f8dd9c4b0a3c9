"""Bad input at the door: a refused start writes nothing, and fixing the mistake is enough."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from optuna.trial import TrialState

from tests.conftest import run_cli, run_here, trials_of, write_study

GOOD_TASK = """
from sweeper.examples.digits import mlp_task


def task(broken=False):
    t = mlp_task()
    if broken:
        def build(params):
            raise ValueError("layer sizes do not match")
        t.build_model = build
    return t
"""

TYPOS = {
    "missing attribute": ("my_task:tsk", "", "has no 'tsk'"),
    "raises on import": (
        "my_task:task",
        "raise RuntimeError('bad import')\n",
        "importing it failed",
    ),
    "not callable": ("my_task:NUMBER", "NUMBER = 3\n", "calling it raised"),
    "returns a dict": ("my_task:as_dict", "def as_dict():\n    return {}\n", "returned dict"),
    "raises": ("my_task:boom", "def boom():\n    raise KeyError('x')\n", "calling it raised"),
}


def _listing(folder: Path) -> list[str]:
    return sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts
    )


@pytest.mark.usefixtures("local_ray")
@pytest.mark.parametrize("kind", sorted(TYPOS))
def test_door_a_task_typo_costs_only_the_message(tmp_path: Path, kind: str) -> None:
    ref, extra, words = TYPOS[kind]
    (tmp_path / "my_task.py").write_text(GOOD_TASK + extra)
    path = write_study(tmp_path, task=ref, trials=2, epochs=1)
    before = _listing(tmp_path)
    # one kind through a fresh process as a user starts it, the others through the same
    # `main` in this process (they differ only in what the task loader raises)
    run = run_cli if kind == "raises on import" else run_here
    out = run("run", path.name, "--plain", cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert words in out.stderr and "Traceback" not in out.stdout + out.stderr
    assert _listing(tmp_path) == before  # no sweeps.db, no study remembering the typo


@pytest.mark.usefixtures("local_ray")
def test_door_fixed_typo_runs_and_an_empty_study_takes_the_fix(tmp_path: Path) -> None:
    (tmp_path / "my_task.py").write_text(GOOD_TASK)
    path = write_study(
        tmp_path,
        task="my_task:task",
        trials=2,
        epochs=1,
        budget_extra=", max_consecutive_failures: 1",
        extra="task_args: {broken: true}\nprobes: {gate: 'off'}\n",
    )
    first = run_here("run", path.name, "--plain", cwd=tmp_path)
    assert first.returncode == 1 and "layer sizes do not match" in first.stdout
    path.write_text(path.read_text().replace("broken: true", "broken: false"))
    again = run_here("run", path.name, "--plain", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "had no finished trial yet: it now uses this definition" in again.stdout
    states = [t.state for t in trials_of(f"sqlite:///{tmp_path / 'sweeps.db'}", "tiny")]
    assert states.count(TrialState.COMPLETE) == 2 and TrialState.FAIL in states
    # (a study with finished trials is still protected: tests/cli_tests/test_run.py)


@pytest.mark.usefixtures("local_ray")
def test_door_a_gpu_request_without_gpus_writes_nothing(tmp_path: Path) -> None:
    path = write_study(tmp_path, extra="resources: {gpus: 1}\n")
    before = _listing(tmp_path)
    out = run_here("run", path.name, "--plain", cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "resources.gpus is 1 but the Ray cluster has 0 GPUs" in out.stderr
    assert _listing(tmp_path) == before


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (("trials: 6", "trials: yes"), "budget.trials: Input should be a valid integer, got 'yes'"),
        (
            ("pruner: {type: none}", "pruner: {type: none}\nbudget: {trials: 400, epochs: 1}"),
            "budget: the key appears twice (lines 4 and 7)",
        ),
    ],
)
def test_door_strict_yaml_refuses_before_anything(
    tmp_path: Path, change: tuple[str, str], words: str
) -> None:
    path = write_study(tmp_path)
    path.write_text(path.read_text().replace(*change))
    before = _listing(tmp_path)
    for command in ("validate", "run"):
        out = run_here(command, path.name, cwd=tmp_path)
        assert out.returncode == 2, out.stdout + out.stderr
        assert words in out.stderr
    assert _listing(tmp_path) == before


def test_door_installed_script_finds_a_task_in_the_working_directory(tmp_path: Path) -> None:
    script = shutil.which("sweeper", path=os.path.dirname(sys.executable))
    assert script, "the sweeper script is installed beside this Python"
    (tmp_path / "my_task.py").write_text(GOOD_TASK)
    (tmp_path / "studies").mkdir()
    path = write_study(tmp_path / "studies", task="my_task:task")
    for command in ("validate", "probe"):
        out = subprocess.run(
            [script, command, str(path.relative_to(tmp_path))],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("command", ["status", "best", "export", "report"])
def test_door_read_only_commands_never_create_a_store(tmp_path: Path, command: str) -> None:
    args = [command, "nope"] + (["--out", "x.csv"] if command == "export" else [])
    args += ["--out", "r.html"] if command == "report" else []
    out = run_here(*args, cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "no study store at" in out.stderr and "Traceback" not in out.stderr
    assert _listing(tmp_path) == []


def test_door_unknown_study_in_an_existing_store_names_the_ones_there(tmp_path: Path) -> None:
    import optuna

    optuna.create_study(study_name="there", storage=f"sqlite:///{tmp_path / 'sweeps.db'}")
    out = run_here("best", "nope", cwd=tmp_path)
    assert out.returncode == 1
    assert "no study named 'nope' in the store; studies there: ['there']" in out.stderr


def test_door_read_only_commands_on_a_newer_schema_or_a_refusing_server(tmp_path: Path) -> None:
    import sqlite3

    import optuna

    from tests.conftest import free_port

    optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'sweeps.db'}")
    with sqlite3.connect(tmp_path / "sweeps.db") as con:
        con.execute("UPDATE alembic_version SET version_num = 'v99.0.0.a'")
    out = run_here("status", "s", cwd=tmp_path)
    assert out.returncode == 1 and "written by a newer Optuna" in out.stderr, out.stderr
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"
    out = run_here("best", "s", "--storage", url, cwd=tmp_path)
    assert out.returncode == 1 and "Connection refused" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_door_a_sqlite_store_in_a_missing_folder_is_refused_before_ray(tmp_path: Path) -> None:
    (tmp_path / "my_task.py").write_text(GOOD_TASK)
    path = write_study(
        tmp_path,
        task="my_task:task",
        trials=2,
        epochs=1,
        storage="sqlite:///no/such/folder/sweeps.db",
    )
    out = run_cli("run", path.name, "--plain", cwd=tmp_path, timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "does not exist" in out.stderr and "mkdir" in out.stderr
    assert "gcs_server" not in out.stdout + out.stderr and "Ray" not in out.stdout
    assert not (tmp_path / "no").exists()


def test_door_a_postgresql_store_that_refuses_is_named_in_seconds_before_ray(
    tmp_path: Path,
) -> None:
    """A server that is not there (a free port) or refuses the login: exit 2 within seconds,
    the password hidden, no Ray started and nothing written."""
    import time

    from tests.conftest import free_port

    (tmp_path / "my_task.py").write_text(GOOD_TASK)
    url = f"postgresql+psycopg://postgres:s3cret@127.0.0.1:{free_port()}/nowhere"
    path = write_study(tmp_path, task="my_task:task", trials=2, epochs=1, storage=url)
    t0 = time.monotonic()
    out = run_cli("run", path.name, "--plain", cwd=tmp_path, timeout=60)
    took = time.monotonic() - t0
    assert out.returncode == 2, out.stdout + out.stderr
    assert "cannot reach store" in out.stderr and "nothing was written" in out.stderr
    assert "s3cret" not in out.stdout + out.stderr and "Traceback" not in out.stderr
    assert "gcs_server" not in out.stdout + out.stderr and "Ray" not in out.stdout
    assert took < 30, took  # seconds, not a Ray start-up and a timeout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_task.py", "tiny.yaml"]
