"""A worker killed late in a long trial: the re-run resumes from the last checkpoint, the
study keeps exactly the best trial's weights, and `load_best_model` gives back its value.
Real CLI, real Ray, real SQLite store and artifact folder."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState

import sweeper
from sweeper.checkpoint import weights_id
from tests.conftest import (
    assert_final,
    kill_group,
    run_cli,
    slow_study,
    start_cli,
    trials_of,
    wait_until,
)

EPOCHS, EVERY = 20, 5


def _late_trial(url: str, name: str) -> Any:
    """A running trial with at least 15 of its 20 epochs reported."""
    for t in trials_of(url, name):
        if t.state == TrialState.RUNNING and len(t.intermediate_values) >= 15:
            return t
    return None


def test_worker_killed_at_epoch_15_resumes_and_best_weights_come_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    slow_study(
        tmp_path,
        "resume",
        url,
        trials=2,
        epochs=EPOCHS,
        delay=0.008,
        extra=f"checkpoint: {{every_epochs: {EVERY}, keep_best: 1}}\n",
    )
    proc = start_cli("run", "resume.yaml", "--plain", cwd=tmp_path)
    try:
        victim = wait_until("a trial at epoch 15", lambda: _late_trial(url, "resume"), proc=proc)
        os.kill(victim.user_attrs["sweeper:worker"]["pid"], signal.SIGKILL)
        out, _ = proc.communicate(timeout=300)
    finally:
        kill_group(proc)
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    trials = assert_final(url, "resume", budget=2)
    lost = trials[victim.number]
    rerun = next(t for t in trials if t.user_attrs.get("sweeper:retry_of") == victim.number)
    resumed = rerun.user_attrs["sweeper:resumed_from"]
    assert resumed["trial"] == victim.number and resumed["epoch"] in (10, 15), resumed
    assert f"resumed from trial {victim.number}'s checkpoint at epoch" in out
    # one whole curve for the pruner: the earlier run's values, then the re-run's own
    assert sorted(rerun.intermediate_values) == list(range(EPOCHS))
    for step in range(resumed["epoch"]):
        assert rerun.intermediate_values[step] == lost.intermediate_values[step]
    trained = len(lost.intermediate_values) + 1 + (EPOCHS - resumed["epoch"])  # +1: cut epoch
    assert trained <= EPOCHS + EVERY, trained

    # retention: the best trial's weights and nothing else (no checkpoint, no temporary file)
    best = sweeper.best_config("resume", storage=url)
    folder = tmp_path / "sweeps-artifacts"
    assert sorted(p.name for p in folder.iterdir()) == [weights_id("resume", best.number)]
    assert best.user_attrs["sweeper:weights"] == weights_id("resume", best.number)
    others = [t for t in trials if t.state == TrialState.COMPLETE and t.number != best.number]
    assert others and all("sweeper:weights" not in t.user_attrs for t in others)
    artifacts = [k for t in trials for k in t.system_attrs if k.startswith("artifacts:")]
    assert artifacts == [f"artifacts:{weights_id('resume', best.number)}"]  # the dashboard's

    # the best weights, in the user's own code, reproduce the value the trial reported
    import torch

    from sweeper.training import Data, evaluate, start_run

    monkeypatch.chdir(tmp_path)  # where the task module is, as for `sweeper run`
    model = sweeper.load_best_model("resume", storage=url)
    task = __import__("slow_task").task(0.0)
    run = start_run(task, Data.of(task, torch.device("cpu")), best.params, torch.device("cpu"))
    run.model = model
    assert evaluate(run)["val_accuracy"] == pytest.approx(best.value, abs=1e-6)
    out = run_cli("best", "resume", "--storage", url, "--weights", "best.pt", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    state = torch.load(tmp_path / "best.pt")  # a plain state_dict
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
