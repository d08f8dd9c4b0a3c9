"""Failures that must lose nothing. Each test runs the real CLI (real Ray, a real store), breaks
something for real, and asserts the final state of the store: the requested number of finished
trials, no trial left RUNNING, every failure recorded with its reason."""

from __future__ import annotations

import datetime
import os
import signal
import textwrap
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import (
    FINISHED,
    assert_final,
    kill_group,
    mid_trial,
    pg_connections,
    run_cli,
    slow_study,
    start_cli,
    trials_of,
    wait_until,
    write_study,
)
from tests.services import PgServer

FAST = "probes: {gate: off}\n"  # these tests are about the search loop, not the gate


def _assert_rerun_once(trials: list[Any], lost: Any, why: str) -> None:
    """`lost` was failed with `why` and re-run exactly once with the same params."""
    final = next(t for t in trials if t.number == lost.number)
    assert final.state == TrialState.FAIL
    assert why in final.user_attrs["sweeper:error"]
    assert "re-queued with the same params" in final.user_attrs["sweeper:error"]
    reruns = [t for t in trials if t.user_attrs.get("sweeper:retry_of") == lost.number]
    assert len(reruns) == 1
    assert reruns[0].params == lost.params
    assert reruns[0].state in FINISHED


def _overlap(trials: Any) -> bool:
    """Whether two of `trials` ran at the same time (from their start and end in the store)."""
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    return any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))


# 1. a trial raises ---------------------------------------------------------------------------
def test_failures_consecutive_limit_stops_the_study_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "broken_task.py").write_text(
        textwrap.dedent("""
        from sweeper.examples.digits import mlp_task

        def task():
            t = mlp_task()
            def build_model(params):
                raise ValueError("layer sizes do not match (64 vs 65)")
            t.build_model = build_model
            return t
        """)
    )
    write_study(
        tmp_path,
        name="always-fails",
        trials=20,
        epochs=2,
        task="broken_task:task",
        budget_extra=", max_consecutive_failures: 3",
        extra=FAST + "resources: {max_concurrent: 1}\n",
    )
    out = run_cli("run", "always-fails.yaml", "--plain", cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "3 trials failed in a row" in out.stdout
    assert "layer sizes do not match" in out.stdout
    trials = trials_of(f"sqlite:///{tmp_path / 'sweeps.db'}", "always-fails")
    assert [t.state for t in trials] == [TrialState.FAIL] * 3  # the budget was not burnt
    for t in trials:
        assert "ValueError: layer sizes do not match" in t.user_attrs["sweeper:error"]


# 2. a Ray worker is killed -----------------------------------------------------------------
def test_failures_worker_killed_mid_trial_is_rerun_with_same_params(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    slow_study(tmp_path, "kill-worker", url, trials=8, epochs=12)
    proc = start_cli("run", "kill-worker.yaml", "--plain", cwd=tmp_path)
    try:
        victim = wait_until(
            "a trial in its middle", lambda: mid_trial(url, "kill-worker"), proc=proc
        )
        killed_at = datetime.datetime.now()
        os.kill(victim.user_attrs["sweeper:worker"]["pid"], signal.SIGKILL)
        out, _ = proc.communicate(timeout=300)
    finally:
        kill_group(proc)
    assert proc.returncode == 0, out
    trials = assert_final(url, "kill-worker", budget=8)
    _assert_rerun_once(trials, victim, "the Ray worker running it died")
    assert len(trials) == 9  # eight finished + the one that was killed, nothing else
    # the slot came back: trials started after the kill ran two at a time again
    assert "going on with the others" not in out, out
    assert _overlap(t for t in trials if t.datetime_start > killed_at), out


# 3. a node leaves the cluster ----------------------------------------------------------------
def test_failures_node_leaving_the_cluster_mid_study(tmp_path: Path, pg_url: str) -> None:
    """On PostgreSQL, with checkpoints in a folder both Ray nodes share: the trial on the
    node that left resumes on the other from its last checkpoint."""
    from ray.cluster_utils import Cluster

    url = pg_url
    # slower trials (~0.5 s an epoch): removing a node takes a moment, the trial must outlast it
    slow_study(
        tmp_path,
        "node-leaves",
        url,
        trials=4,
        epochs=12,
        delay=0.02,
        extra="checkpoint: {every_epochs: 1}\n",
    )
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
        proc = start_cli(
            "run", "node-leaves.yaml", "--plain", "--address", cluster.address, cwd=tmp_path
        )
        try:
            victim = wait_until(
                "a trial in its middle", lambda: mid_trial(url, "node-leaves"), proc=proc
            )
            node_id = victim.user_attrs["sweeper:worker"]["node"]
            gone = next(n for n in nodes if n.node_id == node_id)
            cluster.remove_node(gone, allow_graceful=False)
            out, _ = proc.communicate(timeout=300)
        finally:
            kill_group(proc)
    finally:
        cluster.shutdown()
    assert proc.returncode == 0, out
    trials = assert_final(url, "node-leaves", budget=4)
    _assert_rerun_once(trials, victim, "the Ray worker running it died")
    survivors = {t.user_attrs["sweeper:worker"]["node"] for t in trials if t.number > victim.number}
    assert node_id not in survivors  # everything after ran on the node that stayed
    rerun = next(t for t in trials if t.user_attrs.get("sweeper:retry_of") == victim.number)
    assert rerun.user_attrs["sweeper:resumed_from"]["epoch"] >= 1  # from the shared folder


# 4. the driver is killed -------------------------------------------------------------------
@pytest.mark.parametrize("goals", ["one objective", "a front"])
def test_failures_driver_killed_then_rerun_resumes(tmp_path: Path, goals: str) -> None:
    """The same for a study of several objectives: its front survives the kill."""
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    several = (
        "objectives: [{metric: val_accuracy}, {metric: params}]\n"
        "constraints: [{metric: flops, max: 1.0e+6}]\n"
        if goals == "a front"
        else ""
    )
    slow_study(
        tmp_path,
        "kill-driver",
        url,
        trials=6,
        epochs=10,
        extra="checkpoint: {every_epochs: 2}\n" + several,
    )
    proc = start_cli("run", "kill-driver.yaml", "--plain", cwd=tmp_path)
    try:

        def midway() -> bool:
            trials = trials_of(url, "kill-driver")
            done = [t for t in trials if t.state in FINISHED]
            return len(done) >= 2 and mid_trial(url, "kill-driver") is not None

        wait_until("two finished trials and one running", midway, proc=proc)
        os.kill(proc.pid, signal.SIGKILL)  # the driver only: its Ray processes may linger
        proc.wait(timeout=30)
    finally:
        kill_group(proc)
    at_kill = trials_of(url, "kill-driver")
    orphans = [t for t in at_kill if t.state == TrialState.RUNNING]
    kept = {t.number: (t.state, t.values, t.params) for t in at_kill if t.state in FINISHED}
    assert orphans and len(kept) >= 2

    again = run_cli("run", "kill-driver.yaml", "--plain", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "failed and re-queued: its driver" in again.stdout
    trials = assert_final(url, "kill-driver", budget=6)
    for number, before in kept.items():  # finished trials kept as they were
        t = trials[number]
        assert (t.state, t.values, t.params) == before
    if several:  # the front is Optuna's own over every finished trial, the re-runs included
        study = optuna.load_study(study_name="kill-driver", storage=url)
        front = study.best_trials
        assert front and all(t.system_attrs["constraints"][0] <= 0 for t in front)
        for t in front:
            assert t.values == [
                t.user_attrs["sweeper:metrics"]["val_accuracy"],
                t.user_attrs["sweeper:metrics"]["params"],
            ]
    for lost in orphans:
        _assert_rerun_once(trials, lost, "its driver (process")
        kept_ckpts = lost.user_attrs.get("sweeper:checkpoints")
        rerun = next(t for t in trials if t.user_attrs.get("sweeper:retry_of") == lost.number)
        if kept_ckpts:  # it had checkpointed: the re-run goes on from there, not from epoch 0
            assert rerun.user_attrs["sweeper:resumed_from"] == {
                "trial": lost.number,
                "epoch": kept_ckpts[0]["epoch"],
            }
    assert len(trials) == 6 + len(orphans)  # no duplicates beyond the re-runs


# 4b. SIGTERM (Kubernetes, `ray job stop`) -----------------------------------------------------
def test_failures_sigterm_fails_and_requeues_running_trials(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    slow_study(tmp_path, "sigterm", url, trials=4, epochs=10)
    proc = start_cli("run", "sigterm.yaml", "--plain", cwd=tmp_path)
    try:
        wait_until("a trial in its middle", lambda: mid_trial(url, "sigterm"), proc=proc)
        os.kill(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        kill_group(proc)
    assert proc.returncode == 143, out
    assert "stopped by SIGTERM" in out and "Traceback" not in out, out
    at_stop = trials_of(url, "sigterm")
    assert [t.number for t in at_stop if t.state == TrialState.RUNNING] == []
    stopped = [t for t in at_stop if t.state == TrialState.FAIL]
    assert stopped and all("SIGTERM" in t.user_attrs["sweeper:error"] for t in stopped)
    assert len([t for t in at_stop if t.state == TrialState.WAITING]) == len(stopped)

    again = run_cli("run", "sigterm.yaml", "--plain", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    trials = assert_final(url, "sigterm", budget=4)
    for lost in stopped:
        _assert_rerun_once(trials, lost, "the driver received SIGTERM")


# 5. PostgreSQL restarts --------------------------------------------------------------------
def test_failures_postgres_restart_mid_study(
    tmp_path: Path, pg_url: str, pg_server: PgServer
) -> None:
    if pg_server.restart is None:
        pytest.skip("restarting this PostgreSQL server needs pg_ctlcluster and root (as on CI)")
    slow_study(tmp_path, "pg-restart", pg_url, trials=6, epochs=10)
    proc = start_cli("run", "pg-restart.yaml", "--plain", cwd=tmp_path)
    try:
        wait_until(
            "two finished trials",
            lambda: len([t for t in trials_of(pg_url, "pg-restart") if t.state in FINISHED]) >= 2,
            proc=proc,
        )
        pg_server.restart()
        out, _ = proc.communicate(timeout=300)
    finally:
        kill_group(proc)
    assert proc.returncode == 0, out
    trials = assert_final(pg_url, "pg-restart", budget=6)
    assert [t.number for t in trials if t.state == TrialState.FAIL] == []
    assert all(len(t.intermediate_values) == 10 for t in trials)  # no report lost


# 5b. an ask cut off by a store outage -------------------------------------------------------
def test_failures_trial_left_running_by_a_cut_off_ask_is_taken_back(tmp_path: Path) -> None:
    """A store restart can cut off the answer to an ask that the server committed: a trial
    RUNNING that no driver claimed. The run takes it back instead of ending with it RUNNING
    and the study one trial short (seen on a PostgreSQL restart)."""
    import optuna

    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    slow_study(tmp_path, "stray", url, trials=4, epochs=6)
    proc = start_cli("run", "stray.yaml", "--plain", cwd=tmp_path)
    try:
        wait_until("a trial in its middle", lambda: mid_trial(url, "stray"), proc=proc)
        storage = optuna.storages.RDBStorage(url)
        stray = optuna.load_study(study_name="stray", storage=storage).ask()  # never claimed
        with storage.engine.begin() as con:  # as old as a cut-off ask seen after the grace
            old = datetime.datetime.now() - datetime.timedelta(hours=1)  # Optuna's clock
            con.exec_driver_sql(
                "UPDATE trials SET datetime_start = ? WHERE trial_id = ?",
                (old.isoformat(sep=" "), stray._trial_id),
            )
        storage.engine.dispose()
        out, _ = proc.communicate(timeout=300)
    finally:
        kill_group(proc)
    assert proc.returncode == 0, out
    trials = assert_final(url, "stray", budget=4)
    taken = trials[stray.number]
    assert taken.state == TrialState.FAIL
    assert "left running by a driver that is gone" in taken.user_attrs["sweeper:error"]


# 6. two drivers at once --------------------------------------------------------------------
def test_failures_two_drivers_on_one_study(tmp_path: Path, store_url: str) -> None:
    write_study(tmp_path, name="shared", trials=100, epochs=3, storage=store_url, extra=FAST)
    procs = [
        start_cli("run", "shared.yaml", "--plain", "--trials", str(n), cwd=tmp_path) for n in (4, 5)
    ]
    peak = 0
    try:
        while any(p.poll() is None for p in procs):
            if store_url.startswith("postgresql"):
                peak = max(peak, pg_connections(store_url))
            time.sleep(0.25)
        outs = [p.communicate(timeout=60)[0] for p in procs]
    finally:
        for p in procs:
            kill_group(p)
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out
    trials = trials_of(store_url, "shared")
    assert sorted(t.number for t in trials) == list(range(9))  # exactly 4 + 5, no gaps
    assert {t.state for t in trials} == {TrialState.COMPLETE}
    assert all(len(t.intermediate_values) == 3 for t in trials)
    drivers = {t.system_attrs["sweeper:driver"] for t in trials}
    assert len(drivers) == 2
    if store_url.startswith("postgresql"):
        # a bounded pool each (4 + 4 overflow); nothing left open once the drivers exit
        assert 0 < peak <= 16
        # (a server process ends a moment after its client hangs up, this test's reads too)
        wait_until("the connections to close", lambda: pg_connections(store_url) == 0, 10)
