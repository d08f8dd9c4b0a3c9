"""`sweeper run` end to end: the real CLI (in a subprocess where a fresh process matters: a
user's first run, which modules a command imports; otherwise its own `main` in this process on
one local Ray for the module), real Ray, a real SQLite/PostgreSQL store."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tests.conftest import run_cli, run_here, trials_of, write_study

pytestmark = pytest.mark.usefixtures("local_ray")


def _trials(folder: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    return trials_of(f"sqlite:///{folder / 'sweeps.db'}", name)


def test_run_finishes_study_then_resumes_without_duplicates(tmp_path: Path, store_url: str) -> None:
    path = write_study(tmp_path, trials=5, epochs=3, storage=store_url)
    out = run_cli("run", path.name, "--plain", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Study gate: PASS" in out.stdout
    assert "best val_accuracy = " in out.stdout
    assert "sweeper dashboard" in out.stdout
    assert "Token authentication" not in out.stdout + out.stderr  # Ray's noise, not ours
    # the best trials' final weights, kept in the artifacts folder for load_best_model
    system_keys = [k for t in trials_of(store_url, "tiny") for k in t.system_attrs]
    assert len([k for k in system_keys if k.startswith("artifacts:")]) == 3  # keep_best: 3

    # Optuna's own API reads the store unchanged.
    first = trials_of(store_url, "tiny")
    assert [t.state for t in first] == [TrialState.COMPLETE] * 5
    assert all(len(t.intermediate_values) == 3 for t in first)
    storage = optuna.storages.RDBStorage(store_url)
    study = optuna.load_study(study_name="tiny", storage=storage)
    assert study.best_value > 0.8
    system = study._storage.get_study_system_attrs(study._study_id)
    storage.engine.dispose()
    assert system["sweeper:definition"] == path.read_text()
    assert system["sweeper:gate"]["verdict"] == "pass"
    assert {f["probe"] for f in system["sweeper:gate"]["findings"]} >= {"init_loss", "overfit_tiny"}

    # Same command again: budget already met, nothing new, nothing lost.
    started = (
        "import sys; from sweeper.cli import main; code = main(sys.argv[1:]); "
        "ray = sys.modules.get('ray'); "
        "print('RAY STARTED', bool(ray and ray.is_initialized())); sys.exit(code)"
    )
    again = subprocess.run(
        [sys.executable, "-c", started, "run", path.name, "--plain"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(trials_of(store_url, "tiny")) == 5
    # ... and says so, without starting Ray (so neither runners nor the gate)
    assert "already has 5 finished trials (budget.trials: 5): nothing to run" in again.stdout
    assert "RAY STARTED False" in again.stdout and "Study gate" not in again.stdout
    assert f"best val_accuracy = {max(t.value for t in first):.4f}" in again.stdout

    # A larger budget resumes the same study.
    path.write_text(path.read_text().replace("trials: 5", "trials: 7"))
    more = run_here("run", path.name, "--plain", cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    after = trials_of(store_url, "tiny")
    assert len(after) == 7
    assert [(t.number, t.value, t.params) for t in after[:5]] == [
        (t.number, t.value, t.params) for t in first
    ]

    # `best` in both formats, `status`, and the optuna CLI on the same store.
    store = ("--storage", store_url)
    best = run_here("best", "tiny", "--format", "json", *store, cwd=tmp_path)
    assert best.returncode == 0, best.stderr
    data = json.loads(best.stdout)
    assert data["value"] == max(t.value for t in after)
    assert data["params"]["hidden"] == 64  # fixed params are part of the best config
    assert set(data["params"]) == {"lr", "batch_size", "dropout", "init", "hidden"}
    as_yaml = yaml.safe_load(
        run_here("best", "tiny", "--format", "yaml", *store, cwd=tmp_path).stdout
    )
    assert as_yaml == data
    status = run_here("status", "tiny", "--json", *store, cwd=tmp_path)
    status_json = json.loads(status.stdout)
    assert status_json["counts"] == {"complete": 7}
    assert status_json["probe_seconds_saved"] == 0  # healthy trials: nothing stopped
    listed = subprocess.run(
        [
            str(Path(sys.executable).parent / "optuna"),
            "studies",
            "-f",
            "json",
            "--storage",
            store_url,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stderr
    assert [s["name"] for s in json.loads(listed.stdout)] == ["tiny"]

    # The read-only commands answer at once: they import neither torch nor ray.
    # (one fresh interpreter runs them all, checking after each)
    light = (
        "import json, sys; from sweeper.cli import main\n"
        "for i, args in enumerate(json.loads(sys.argv[1])):\n"
        "    code = main(args)\n"
        "    heavy = [m for m in ('torch', 'ray') if m in sys.modules]\n"
        "    print('DONE', i, code, 'HEAVY', heavy, flush=True)\n"
    )
    commands = [
        ["status", "tiny", *store],
        ["status", "tiny", "--json", *store],
        ["best", "tiny", *store],
        ["export", "tiny", "--out", str(tmp_path / "t.csv"), *store],
        ["validate", path.name],
    ]
    done = subprocess.run(
        [sys.executable, "-c", light, json.dumps(commands)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for i, args in enumerate(commands):
        assert f"DONE {i} 0 HEAVY []" in done.stdout, (args, done.stdout[-600:])

    # A changed search space under the same name is refused, not mixed in.
    path.write_text(path.read_text().replace("high: 1.0e-2", "high: 1.0e-1"))
    changed = run_here("run", path.name, "--plain", cwd=tmp_path)
    assert changed.returncode == 2
    assert "different task, objective, epochs, stages or search space" in changed.stderr
    assert len(trials_of(store_url, "tiny")) == 7


def test_run_trial_out_of_gpu_memory_is_recorded_failed_and_study_goes_on(tmp_path: Path) -> None:
    (tmp_path / "flaky.py").write_text(
        textwrap.dedent("""
        import torch
        from sweeper.examples.digits import mlp_task

        def task():
            t = mlp_task()
            build = t.build_model

            def build_model(params):
                if params["hidden"] == 7:  # what torch raises when the GPU is full
                    raise torch.cuda.OutOfMemoryError(
                        "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.7 GiB total)"
                    )
                return build(params)

            t.build_model = build_model
            return t
    """)
    )
    write_study(
        tmp_path,
        name="flaky",
        trials=4,
        epochs=2,
        task="flaky:task",
        budget_extra=", max_consecutive_failures: 50",
        search="""
                  lr: 0.003
                  batch_size: 64
                  dropout: 0.0
                  init: default
                  hidden: {type: categorical, choices: [32, 7]}
                """,
    )
    out = run_here("run", "flaky.yaml", "--plain", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    trials = _trials(tmp_path, "flaky")
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(complete) == 4
    assert all(t.params["hidden"] == 32 for t in complete)
    assert failed, "the sampler never tried hidden=7"
    for t in failed:  # out of GPU memory: the trial fails, naming the batch size; the study goes on
        assert t.params["hidden"] == 7
        error = t.user_attrs["sweeper:error"]
        assert error.startswith("CUDA out of memory with batch_size=64"), error
        assert "lower the batch_size choices" in error
    assert not [t for t in trials if t.state == TrialState.RUNNING]


def test_run_strict_gate_failure_stops_before_any_trial(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text(
        textwrap.dedent("""
        from torch import nn
        from sweeper.examples.digits import mlp_task

        def task():
            t = mlp_task()
            build = t.build_model
            # softmax before cross_entropy: a classic, silent bug
            t.build_model = lambda p: nn.Sequential(build(p), nn.Softmax(dim=-1))
            return t
    """)
    )
    write_study(tmp_path, name="broken", task="broken:task")
    out = run_here("run", "broken.yaml", "--plain", cwd=tmp_path)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "Root cause: output_activation_vs_loss" in out.stdout and "softmax" in out.stdout
    # the symptom, by name
    assert "(follows from output_activation_vs_loss: overfit_tiny" in out.stdout
    assert _trials(tmp_path, "broken") == []


def test_run_missing_task_module_is_a_clear_error(tmp_path: Path) -> None:
    write_study(tmp_path, name="missing", task="nowhere_module:task")
    out = run_here("run", "missing.yaml", "--plain", cwd=tmp_path)
    assert out.returncode == 2
    assert "module 'nowhere_module' not found" in out.stderr


def test_run_per_trial_probe_stops_diverging_trials_as_pruned(tmp_path: Path) -> None:
    write_study(
        tmp_path,
        name="hot",
        trials=3,
        epochs=4,
        search="""
        lr: {type: float, low: 2.0, high: 5.0, log: true}
        batch_size: 64
        dropout: 0.0
        init: default
        optimizer: sgd
    """,
        extra="probes: {gate: warn, lr_cap: false}\n",
    )
    out = run_here("run", "hot.yaml", "--plain", cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr  # every trial stopped: no best
    assert "no trial completed: the trials were ended by" in out.stdout, out.stdout
    trials = _trials(tmp_path, "hot")
    assert len(trials) == 3
    for t in trials:
        assert t.state == TrialState.PRUNED
        assert t.user_attrs["sweeper:stopped"].startswith("stopped by probe:")
        assert t.user_attrs["sweeper:seconds_saved"] > 0
        assert any(f["verdict"] == "fail" for f in t.user_attrs["sweeper:findings"])
    status = json.loads(run_here("status", "hot", "--json", cwd=tmp_path).stdout)
    assert status["probe_seconds_saved"] > 0
