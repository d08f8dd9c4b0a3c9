from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli, write_study


@pytest.fixture(scope="session")
def finished_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small study, run once for every test of both modules here (they only read it and
    write their own files beside it): a wide lr range (up to 3 with SGD and
    no cap), so some trials diverge and are stopped by the per-trial probes."""
    folder = tmp_path_factory.mktemp("study")
    write_study(
        folder,
        name="shown",
        trials=8,
        epochs=3,
        search="""
          lr: {type: float, low: 1.0e-3, high: 3.0, log: true}
          batch_size: {type: categorical, choices: [32, 64]}
          dropout: {type: float, low: 0.0, high: 0.3}
          init: {type: categorical, choices: [default, kaiming_normal, orthogonal]}
          optimizer: sgd
        """,
        extra="probes: {gate: warn, lr_cap: false}\nsampler: {type: random, seed: 3}\n",
    )
    out = run_cli("run", "shown.yaml", "--plain", cwd=folder)
    assert out.returncode == 0, out.stdout + out.stderr
    return folder


@pytest.fixture(scope="session")
def pareto_study(finished_study: Path) -> str:
    """A study of two objectives with a constraint, in the same store as `finished_study`
    (the dashboard serves both): val_accuracy against params, the flops bounded."""
    (finished_study / "pareto.yaml").write_text(
        """\
name: pareto
task: sweeper.examples.digits:mlp_task
storage: sqlite:///sweeps.db
budget: {trials: 5, epochs: 1}
objectives: [{metric: val_accuracy}, {metric: params}]
constraints: [{metric: flops, max: 60000}]
sampler: {type: tpe, seed: 1, startup_trials: 3}
pruner: {type: none}
probes: {gate: off}
search:
  lr: {type: float, low: 3.0e-3, high: 1.0e-2, log: true}
  batch_size: 64
  dropout: 0.0
  hidden: {type: int, low: 8, high: 256, log: true}
"""
    )
    out = run_cli("run", "pareto.yaml", "--plain", cwd=finished_study)
    assert out.returncode == 0, out.stdout + out.stderr
    return "pareto"
