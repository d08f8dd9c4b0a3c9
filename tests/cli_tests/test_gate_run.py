"""The study gate inside `sweeper run`: progress probe by probe, not run again on a resume
with the same task code, a probe that never returns or a worker that crashes named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import run_here, write_study

TASK = """
import ctypes, os, signal, time, warnings
from torch import nn
from sweeper.examples.digits import mlp_task

MODE = {mode!r}


class Stuck(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        if MODE == "hang":
            while True:
                time.sleep(0.05)  # a forward that never returns
        if MODE == "crash":
            ctypes.string_at(0)  # a crash in native code (SIGSEGV in this thread)
        if MODE == "noisy" and not getattr(Stuck, "said", False):
            Stuck.said = True  # once per worker process
            print("TASK-PRINT from the forward", flush=True)
            warnings.warn("TASK-WARNING from a framework")
        return self.inner(x)


def task():
    t = mlp_task()
    inner = t.build_model
    t.build_model = lambda p: Stuck(inner(p))
    return t
"""


def _study(folder: Path, mode: str, extra: str = "") -> Path:
    (folder / "my_task.py").write_text(TASK.format(mode=mode))
    return write_study(folder, task="my_task:task", trials=2, epochs=1, extra=extra)


@pytest.mark.usefixtures("local_ray")
def test_gate_shows_each_probe_and_is_not_run_again_on_a_resume(tmp_path: Path) -> None:
    path = _study(tmp_path, "ok")
    first = run_here("run", path.name, "--plain", "--trials", "1", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    lines = [ln for ln in first.stdout.splitlines() if ln.startswith("gate  ")]
    assert [ln.split()[1] for ln in lines][:3] == ["data_finite", "labels_in_range", "data_scale"]
    assert any("lr_range_test" in ln for ln in lines)

    again = run_here("run", path.name, "--plain", "--trials", "1", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "not run again" in again.stdout and "gate  data_finite" not in again.stdout

    # the task's code changed: the gate runs again
    (tmp_path / "my_task.py").write_text(TASK.format(mode="ok") + "\n# edited\n")
    edited = run_here("run", path.name, "--plain", "--trials", "1", cwd=tmp_path)
    assert edited.returncode == 0, edited.stdout + edited.stderr
    assert "gate  data_finite" in edited.stdout


@pytest.mark.usefixtures("local_ray")
def test_the_tasks_own_output_goes_to_the_studys_worker_log_not_the_console(
    tmp_path: Path,
) -> None:
    import time

    path = _study(tmp_path, "noisy")
    out = run_here("run", path.name, "--plain", "--trials", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "TASK-" not in out.stdout + out.stderr
    log = tmp_path / "sweeper-logs" / "tiny" / "workers.log"
    deadline = time.monotonic() + 30  # Ray forwards a worker's lines about once a second
    while time.monotonic() < deadline and "TASK-WARNING" not in _text(log):
        time.sleep(0.5)
    assert "TASK-PRINT from the forward" in _text(log) and "TASK-WARNING" in _text(log)


def test_show_output_prints_the_tasks_lines_and_a_dump_still_goes_to_the_log(
    tmp_path: Path,
) -> None:
    from sweeper.orchestrator._cluster import _keep_off_console, worker_log, worker_log_ready

    log = tmp_path / "workers.log"
    try:
        worker_log(log, show=True)
        worker_log_ready()
        assert not _keep_off_console({"pid": 7, "lines": ["epoch 1 done"]})
        assert _keep_off_console({"pid": 8, "lines": ["Fatal Python error: Aborted"]})
        assert _keep_off_console({"pid": 8, "lines": ["  File x.py, line 3"]})  # the rest of it
        worker_log(log, show=False)
        assert _keep_off_console({"pid": 7, "lines": ["GPU available: False"]})
        assert "GPU available" not in log.read_text()  # held until the start is known good
        worker_log_ready()
        assert _keep_off_console({"pid": 7, "lines": ["LOCAL_RANK: 0"]})
        text = log.read_text()
        assert text.index("(pid=7) GPU available: False") < text.index("(pid=7) LOCAL_RANK: 0")
    finally:
        worker_log(None, show=False)


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


@pytest.mark.usefixtures("local_ray")
def test_gate_probe_that_never_returns_is_named_with_the_users_line(tmp_path: Path) -> None:
    path = _study(tmp_path, "hang", extra="probes: {probe_timeout_s: 3}\n")
    out = run_here("run", path.name, "--plain", cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "ran for" in out.stderr and "probe_timeout_s" in out.stderr
    assert "my_task.py:" in out.stderr and "in forward" in out.stderr


@pytest.mark.usefixtures("local_ray")
def test_gate_worker_crashing_twice_in_one_probe_is_a_task_error_not_a_retry(
    tmp_path: Path,
) -> None:
    path = _study(tmp_path, "crash")
    out = run_here("run", path.name, "--plain", cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "died twice, both times in probe" in out.stderr and "sweeper probe" in out.stderr
    assert "Segmentation fault at " in out.stderr and "in forward" in out.stderr
    assert re.search(r"my_task\.py:\d+ in forward", out.stderr), out.stderr
    assert "5 times" not in out.stderr and "its start" not in out.stderr
    assert "\x1b[" not in out.stdout + out.stderr  # no colour codes in plain output
    assert "Extension modules" not in out.stdout + out.stderr  # the raw dump: in the log
    assert len(out.stderr.strip().splitlines()) <= 12, out.stderr


@pytest.mark.usefixtures("local_ray")
def test_sweeper_run_from_python_returns_the_study_with_its_gate_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sweeper.run` takes a dict or a path, runs the same driver as `sweeper run`, and hands
    back the optuna.Study; a second call resumes it (the gate is not run again)."""
    import signal
    import sys

    import optuna
    import yaml

    import sweeper

    path = _study(tmp_path, "ok")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    sigterm = signal.getsignal(signal.SIGTERM)
    store = f"sqlite:///{tmp_path / 'python.db'}"
    try:
        study = sweeper.run(yaml.safe_load(path.read_text()), trials=1, storage=store)
        assert isinstance(study, optuna.Study)
        assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]
        assert study.gate_report is not None and study.gate_report.verdict != "fail"
        assert {f.probe for f in study.gate_report.findings} >= {"data_finite", "overfit_tiny"}
        assert study.diagnosis is not None and study.diagnosis.train_metric == "train_accuracy"

        again = sweeper.run(path, trials=1, storage=store, progress=False)
        assert len(again.trials) == 2 and again.gate_report is not None
        with pytest.raises(TypeError, match="definition must be a path, a dict"):
            sweeper.run(42)
    finally:
        signal.signal(signal.SIGTERM, sigterm)
        for name, module in list(sys.modules.items()):
            if str(getattr(module, "__file__", "") or "").startswith(str(tmp_path)):
                del sys.modules[name]
