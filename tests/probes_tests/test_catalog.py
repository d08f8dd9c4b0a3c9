"""Each probe name is declared once, in probes/_settings.py, and what declares it and what runs
it agree: every gate probe name has its function and every function its name; every per-trial
check the monitor can raise is declared, and every declared one is raised somewhere."""

from __future__ import annotations

import re
from pathlib import Path

from sweeper.probes import _gate
from sweeper.probes._settings import GATE_PROBES, TRIAL_CHECKS


def test_gate_probe_names_and_functions_are_the_same_set() -> None:
    assert list(GATE_PROBES) == [name for name, _ in _gate.GATE]
    assert set(_gate._FUNCTIONS) == set(GATE_PROBES)
    assert len(set(GATE_PROBES)) == len(GATE_PROBES)


def test_every_trial_check_is_named_in_the_monitor_and_every_one_it_raises_is_declared() -> None:
    folder = Path(_gate.__file__).parent
    names = ("_trial.py", "_trial_updates.py", "_trial_layers.py", "_trial_metrics.py")
    names += ("_layer_watch.py", "_trial_memory.py", "_trial_modes.py", "_trial_base.py")
    source = "\n".join((folder / n).read_text() for n in names)
    raised = set(re.findall(r'(?:_stop|_warn|Finding)\(\s*"([a-z_]+)"', source))
    assert raised and raised <= set(TRIAL_CHECKS), raised - set(TRIAL_CHECKS)
    named = set(re.findall(r'"([a-z_]+)"', source))
    assert set(TRIAL_CHECKS) <= named, set(TRIAL_CHECKS) - named


def test_the_loops_names_are_declared_once_torch_free_and_the_training_code_uses_them() -> None:
    import subprocess
    import sys

    from sweeper import catalog
    from sweeper.definition import _schema
    from sweeper.training import OPTIMIZERS, PRECISIONS, SCHEDULES, SCHEMES

    assert SCHEMES is catalog.INIT_SCHEMES and _schema.INIT_SCHEMES is catalog.INIT_SCHEMES
    assert (OPTIMIZERS, PRECISIONS, SCHEDULES) == (
        catalog.OPTIMIZERS,
        catalog.PRECISIONS,
        catalog.SCHEDULES,
    )
    code = "import sys, sweeper.catalog, sweeper.definition; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # the definition validates without torch
