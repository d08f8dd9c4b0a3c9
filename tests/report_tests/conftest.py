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
