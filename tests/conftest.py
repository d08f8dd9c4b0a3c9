from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

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
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path
