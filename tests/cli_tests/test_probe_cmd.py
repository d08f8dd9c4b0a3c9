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
