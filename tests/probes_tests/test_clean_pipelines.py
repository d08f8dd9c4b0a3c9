"""Clean pipelines from pytorch/examples and PyTorch's recipes (`clean_pipelines.py`), run as a
user runs a `fit` locally with the checks on: none is stopped, none crashes, and none gets
more than one warning."""

from __future__ import annotations

import pytest

import sweeper
from tests.probes_tests.clean_pipelines import EPOCHS, PIPELINES


def test_there_are_fifteen_clean_pipelines() -> None:
    assert len(PIPELINES) >= 15


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_clean_pipeline_runs_to_the_end_unstopped(name: str) -> None:
    trial = sweeper.Trial({"lr": 1e-3}, epochs=EPOCHS)
    try:
        PIPELINES[name][1](trial)
    except sweeper.TrialStopped as stop:
        pytest.fail(f"{name} ({PIPELINES[name][0]}) was stopped: {stop.reason}")
    finally:
        trial.close()
    assert len(trial.history) == EPOCHS
    warned = [f"{f.probe}: {f.hint}" for f in trial.findings if f.verdict == "warn"]
    assert len(warned) <= 1, warned
