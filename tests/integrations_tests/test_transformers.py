"""Hugging Face's Trainer as a sweeper trial, through `SweeperCallback`, on the real package (a
tiny BERT from a config): every evaluation is reported with the `eval_` names, a diverging
trial is stopped by the probes with its reason, and a study runs from the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from sweeper.orchestrator._runner import TrialRunner  # noqa: E402
from sweeper.probes import Settings  # noqa: E402
from tests.conftest import run_here, run_trial, write_study  # noqa: E402

TASK = "sweeper.examples.hf_text:hf_text_task"
PARAMS = {"lr": 1e-3, "batch_size": 16, "dropout": 0.0, "hidden": 32, "init": "none"}


def _run(params: dict[str, Any], epochs: int) -> tuple[list[dict[str, float]], Any]:
    runner = TrialRunner(TASK, {"train_rows": 600}, [], Settings().model_dump(), True, 1)
    _, metrics, _, last = run_trial(runner, 0, params, epochs)
    return metrics, last


def test_hf_trial_reports_each_evaluation_with_its_eval_names() -> None:
    metrics, last = _run(PARAMS, 4)
    assert last.done and last.error is None, last
    assert len(metrics) == 4
    assert {"eval_loss", "eval_accuracy", "train_loss"} <= set(metrics[-1]), metrics[-1]
    assert "eval_runtime" not in metrics[-1]
    assert metrics[-1]["eval_loss"] < metrics[0]["eval_loss"]


def test_diverging_hf_trial_is_stopped_by_the_probes_with_its_reason() -> None:
    metrics, last = _run({**PARAMS, "lr": 3.0}, 4)
    assert last.stopped and last.error is None, last
    assert len(metrics) <= 1, metrics
    checks = ("update_ratio", "activation_explosion", "nonfinite_grad", "nonfinite_loss")
    assert last.stopped.split(":")[0] in checks, last.stopped


@pytest.mark.usefixtures("local_ray")
def test_hf_study_runs_from_the_cli(workdir: Path) -> None:
    path = write_study(
        workdir,
        name="hf",
        trials=3,
        epochs=3,
        task=TASK,
        search="""
          lr: {type: float, low: 5.0e-4, high: 2.0e-3, log: true}
          batch_size: 16
          dropout: 0.0
          hidden: 32
        """,
        extra="objective: {metric: eval_accuracy, direction: maximize}\n"
        "task_args: {train_rows: 600}\n",
    )
    out = run_here("run", str(path), cwd=workdir)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Study gate: PASS" in out.stdout
    study = optuna.load_study(study_name="hf", storage="sqlite:///sweeps.db")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 3 and all(len(t.intermediate_values) == 3 for t in done)
    assert study.best_value > 0.35  # four classes: chance is ~0.3

    # the best model comes back as the user built it: an HF model whose output has .logits,
    # equal to a fresh model of theirs loaded with the same weights (no hook of sweeper's)
    import torch

    import sweeper
    from sweeper.examples.hf_text import make_sequences, tiny_bert

    model = sweeper.load_best_model("hf", storage="sqlite:///sweeps.db")
    assert not model._forward_hooks and not model._forward_hooks_with_kwargs
    inputs, _ = make_sequences(8, seed=3)
    out = model(**inputs)
    fresh = tiny_bert({**study.best_params, "dropout": 0.0, "hidden": 32})
    fresh.load_state_dict(model.state_dict())
    fresh.eval()
    assert torch.equal(out.logits, fresh(**inputs).logits)


def test_gate_probes_the_hf_models_own_loss_with_loss_model() -> None:
    import sweeper
    from sweeper.examples.hf_text import hf_text_task, tiny_bert

    task = hf_text_task(train_rows=600)
    own = sweeper.Task(
        build_model=tiny_bert,
        train=task.train,
        val=task.val,
        loss="model",  # BertForSequenceClassification(labels=y).loss
        num_classes=task.num_classes,
    )
    report = sweeper.probe(own, PARAMS)
    assert report.verdict != "fail", [(f.probe, f.hint) for f in report.failures]
    ran = {f.probe for f in report.findings if f.verdict != "skip"}
    assert {"overfit_tiny", "lr_range_test", "gradient_flow", "init_loss"} <= ran, ran
