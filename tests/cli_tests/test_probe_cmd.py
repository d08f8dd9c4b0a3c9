from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tests.conftest import run_cli, write_study


def test_cli_probe_json_pass_and_fail(tmp_path: Path) -> None:
    write_study(tmp_path, name="good")
    out = run_cli("probe", "good.yaml", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["verdict"] in ("pass", "warn")
    probes = {f["probe"] for f in report["findings"]}
    assert {"init_loss", "overfit_tiny", "gradient_flow", "lr_range_test"} <= probes
    for f in report["findings"]:
        assert set(f) >= {"probe", "verdict", "measured", "expected", "hint"}

    (tmp_path / "nanbug.py").write_text(
        textwrap.dedent("""
        import numpy as np
        from sweeper.examples.digits import mlp_task

        print("number of parameters: 4.2k")  # as nanoGPT prints at build

        def task():
            t = mlp_task()
            x, y = t.train
            x = x.copy(); x[0, 0] = np.nan
            t.train = (x, y)
            return t
    """)
    )
    write_study(tmp_path, name="nanbug", task="nanbug:task")
    bad = run_cli("probe", "nanbug.yaml", cwd=tmp_path)
    assert bad.returncode == 3
    assert "data_finite" in bad.stdout and "NaN" in bad.stdout
    as_json = run_cli("probe", "nanbug.yaml", "--json", cwd=tmp_path)
    assert as_json.returncode == 3
    assert json.loads(as_json.stdout)["verdict"] == "fail"  # the task's print went to stderr
    assert "number of parameters" in as_json.stderr


def test_cli_probe_forward_that_never_returns_ends_with_the_users_line(tmp_path: Path) -> None:
    """`sweeper probe` runs the gate in its own process under the same watchdog as a runner:
    a forward that never returns ends the command (exit 2) naming the user's line."""
    import re

    (tmp_path / "stuck.py").write_text(
        textwrap.dedent("""
        import time
        from torch import nn
        from sweeper.examples.digits import mlp_task

        class Stuck(nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, x):
                while True:
                    time.sleep(0.05)

        def task():
            t = mlp_task()
            inner = t.build_model
            t.build_model = lambda p: Stuck(inner(p))
            return t
    """)
    )
    write_study(tmp_path, name="stuck", task="stuck:task", extra="probes: {watchdog_s: 3}\n")
    out = run_cli("probe", "stuck.yaml", cwd=tmp_path, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "the study gate hung" in out.stderr
    assert re.search(r"stuck\.py:\d+ in forward", out.stderr), out.stderr
