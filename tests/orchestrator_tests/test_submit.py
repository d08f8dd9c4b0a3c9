"""`sweeper submit` against a real Ray head started with `ray start --head` on loopback, with two
worker nodes on this machine, token authentication on (as Ray enables it by default)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from optuna.trial import TrialState

from tests.conftest import free_port, run_cli, trials_of, write_study


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A head (no CPUs: trials must go to the workers) and two 1-CPU worker nodes."""
    folder = tmp_path_factory.mktemp("ray")
    token = folder / "token"
    token.write_text(secrets.token_hex(32))
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    ray = str(Path(sys.executable).parent / "ray")
    gcs, dash = free_port(), free_port()
    ip = ["--node-ip-address=127.0.0.1", "--disable-usage-stats"]

    def start(*args: str) -> None:
        out = subprocess.run([ray, "start", *args, *ip], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr

    try:
        start(
            "--head",
            f"--port={gcs}",
            "--num-cpus=0",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dash}",
        )
        for _ in range(2):
            start(f"--address=127.0.0.1:{gcs}", "--num-cpus=1")
        yield {**env, "DASHBOARD": f"http://127.0.0.1:{dash}"}
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True)


def test_submit_runs_the_study_as_a_ray_job(
    tmp_path: Path, pg_url: str, ray_head: dict[str, str]
) -> None:
    # the user's own task module sits next to the definition and must travel with the job
    (tmp_path / "my_task.py").write_text(
        textwrap.dedent("""
        from sweeper.examples.digits import mlp_task

        def task(depth=1):
            return mlp_task(depth=depth)
        """)
    )
    write_study(tmp_path, name="on-cluster", trials=4, epochs=2, task="my_task:task")
    env = {k: v for k, v in ray_head.items() if k != "DASHBOARD"}
    address = ray_head["DASHBOARD"]
    sub = run_cli(
        "submit", "on-cluster.yaml", "--address", address, "--storage", pg_url, "--wait",
        cwd=tmp_path, env=env, timeout=600,
    )  # fmt: skip
    assert sub.returncode == 0, sub.stdout + sub.stderr
    job_id = sub.stdout.strip().splitlines()[0]
    assert job_id.startswith("sweeper-on-cluster-")
    assert f"job {job_id}: SUCCEEDED" in sub.stderr
    assert "best val_accuracy = " in sub.stderr  # the job's own `sweeper run` output

    trials = trials_of(pg_url, "on-cluster")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    nodes = {t.user_attrs["sweeper:worker"]["node"] for t in trials}
    assert len(nodes) == 2  # both worker nodes ran trials (the head has no CPUs)

    status = run_cli("status", "on-cluster", "--storage", pg_url, "--json", cwd=tmp_path, env=env)
    assert status.returncode == 0, status.stderr
    jobs = json.loads(status.stdout)["jobs"]
    assert [(j["id"], j["state"]) for j in jobs] == [(job_id, "SUCCEEDED")]


def test_submit_refuses_a_store_the_cluster_would_lose(tmp_path: Path) -> None:
    write_study(tmp_path, name="local-file")  # storage: sqlite:///sweeps.db, relative
    out = run_cli("submit", "local-file.yaml", "--address", "http://127.0.0.1:1", cwd=tmp_path)
    assert out.returncode == 1
    assert "relative to where the job runs" in out.stderr
    assert "postgresql+psycopg://" in out.stderr
