"""The three real-project examples, each from its shipped definition through the CLI's own
`main` (in this process, on one local Ray for the module) on real Ray and SQLite (budgets cut
down to keep the suite short)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from optuna.trial import TrialState

from tests.conftest import ROOT, run_here, trials_of

pytestmark = pytest.mark.usefixtures("local_ray")


def _study(tmp_path: Path, name: str, budget: str, extra: str = "", **replace: str) -> Path:
    text = (ROOT / "studies" / f"{name}.yaml").read_text()
    text = re.sub(r"^budget: .*$", f"budget: {budget}", text, flags=re.M)
    text = re.sub(r"^pruner: .*$", "pruner: {type: none}", text, flags=re.M)
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text + extra)
    return path


def _run(tmp_path: Path, path: Path, env: dict[str, str] | None = None, code: int = 0) -> str:
    out = run_here("run", path.name, "--plain", cwd=tmp_path, env=env)
    assert out.returncode == code, out.stdout[-4000:] + out.stderr[-4000:]
    assert "Traceback" not in out.stdout + out.stderr
    return out.stdout


def test_transformer_dict_batches_bf16_and_macro_f1_objective(tmp_path: Path) -> None:
    path = _study(
        tmp_path,
        "text_transformer",
        "{trials: 3, epochs: 2}",
        extra="task_args: {train_rows: 600, val_rows: 200}\n",
        **{"dim: {type: categorical, choices: [32, 64]}": "dim: 32"},
    )
    stdout = _run(tmp_path, path)
    assert "Study gate: PASS" in stdout
    assert "best macro_f1 = " in stdout
    trials = trials_of(f"sqlite:///{tmp_path / 'sweeps.db'}", "text-transformer")
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert done, [(t.state, t.user_attrs.get("sweeper:stopped")) for t in trials]
    for t in done:
        metrics = t.user_attrs["sweeper:metrics"]
        assert set(metrics) >= {"macro_f1", "val_accuracy", "val_loss", "train_loss"}
        assert t.value == metrics["macro_f1"] and 0.0 <= t.value <= 1.0
    best = run_here("best", "text-transformer", "--format", "json", cwd=tmp_path)
    assert best.returncode == 0, best.stderr
    exported = json.loads(best.stdout)
    assert exported["params"]["precision"] == "bf16" and exported["params"]["init"] == "none"
    assert exported["metrics"]["macro_f1"] == exported["value"]
    table = run_here("export", "text-transformer", "--out", "trials.csv", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "metric_macro_f1" in (tmp_path / "trials.csv").read_text().splitlines()[0]


def test_finetune_keeps_the_backbone_and_searches_the_head_init(tmp_path: Path) -> None:
    path = _study(tmp_path, "finetune_digits", "{trials: 4, epochs: 3}")
    stdout = _run(tmp_path, path, env={"SWEEPER_CACHE": str(tmp_path / "cache")})
    # warnings only: blank pixels of digits 5-9, a new head over-confident on strong features
    assert "Study gate: WARN" in stdout
    assert (tmp_path / "cache" / "digits04_backbone.pt").exists()  # pre-trained once, cached
    trials = trials_of(f"sqlite:///{tmp_path / 'sweeps.db'}", "finetune-digits")
    assert len(trials) == 4
    assert max(t.value or 0 for t in trials) > 0.8


def test_own_loop_reports_each_epoch_and_probes_stop_a_too_high_lr(tmp_path: Path) -> None:
    path = _study(tmp_path, "own_loop_digits", "{trials: 3, epochs: 2}")
    stdout = _run(tmp_path, path)
    assert "Study gate: PASS" in stdout
    trials = trials_of(f"sqlite:///{tmp_path / 'sweeps.db'}", "own-loop-digits")
    for t in trials:
        assert t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        assert sorted(t.intermediate_values) == list(range(len(t.intermediate_values)))
        assert "update_ratio" in t.user_attrs.get("sweeper:probes", "")  # watched by hooks
    assert any(t.state == TrialState.COMPLETE and t.value > 0.8 for t in trials)

    hot = tmp_path / "hot"
    hot.mkdir()
    path = _study(
        hot,
        "own_loop_digits",
        "{trials: 2, epochs: 3}",
        extra="probes: {gate: off}\n",
        **{
            "name: own-loop-digits": "name: own-loop-hot",
            "lr: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}": "lr: 6.0",
            "probes: {gate: strict}\n": "",
        },
    )
    said = _run(hot, path, code=1)  # no trial completed: an exit that tells the truth
    assert "no trial completed: the trials were ended by" in said, said
    assert "sweeper best" not in said  # there is no best to get
    trials = trials_of(f"sqlite:///{hot / 'sweeps.db'}", "own-loop-hot")
    assert [t.state for t in trials] == [TrialState.PRUNED] * 2
    for t in trials:
        stopped = t.user_attrs["sweeper:stopped"]
        assert stopped.startswith("stopped by probe: ")
        assert re.search(r"(loss_growth|update_ratio|nonfinite_grad|nonfinite_loss)", stopped)
        assert t.user_attrs["sweeper:seconds_saved"] > 0


def test_an_objective_metric_the_task_never_reports_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    from tests.conftest import write_study

    path = write_study(
        tmp_path,
        trials=8,
        epochs=1,
        extra="objective: {metric: macro_f1, direction: maximize}\nprobes: {gate: 'off'}\n",
    )
    out = run_here("run", path.name, "--plain", cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "objective.metric 'macro_f1' is never reported by this task" in out.stderr
    assert "val_accuracy, val_loss, train_loss" in out.stderr and "metrics hook" in out.stderr
    assert not (tmp_path / "sweeps.db").exists()  # refused before the store was opened
