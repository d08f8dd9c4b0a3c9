"""Lightning's Trainer as a sweeper trial, through `SweeperCallback`, on the real package: a
study runs from the CLI with every epoch reported and pruned trials ended cleanly, a diverging
trial is stopped by the probes with its reason, and a re-queued trial resumes from Lightning's
own checkpoint with the same numbers as the uninterrupted run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
import torch.nn.functional as F

import sweeper

pytest.importorskip("lightning")

from sweeper.orchestrator._runner import TrialRunner  # noqa: E402
from sweeper.probes import Settings  # noqa: E402
from tests.conftest import run_here, run_trial, write_study  # noqa: E402

TASK = "sweeper.examples.lightning_digits:lightning_digits_task"
PARAMS = {"lr": 3e-3, "batch_size": 64, "dropout": 0.1, "hidden": 32, "init": "none"}


def _runner(folder: Path) -> TrialRunner:
    checkpoint = {"location": str(folder), "study": "s", "every_epochs": 2, "keep_weights": True}
    return TrialRunner(TASK, {}, [], Settings().model_dump(), True, 1, checkpoint)


def _callback_folders() -> set[str]:
    import glob
    import tempfile

    return set(glob.glob(f"{tempfile.gettempdir()}/sweeper-trial*"))


def test_lightning_trial_reports_every_epoch_and_resumes_from_its_checkpoint(
    tmp_path: Path,
) -> None:
    before = _callback_folders()
    runner = _runner(tmp_path)
    _, whole, saved, last = run_trial(runner, 0, PARAMS, 6)
    assert last.done and last.error is None, last
    assert len(whole) == 6
    assert {"val_accuracy", "val_loss", "train_loss"} <= set(whole[-1])
    assert whole[-1]["val_accuracy"] > 0.85, whole[-1]
    # Lightning's checkpoints went through the trial's saver (every 2 epochs, never the last)
    written = [s for s in saved if s["kind"] == "checkpoint"]
    assert [s["epoch"] for s in written] == [2, 4], saved

    resume = {"trial": 0, "checkpoints": [{"id": written[-1]["id"], "epoch": 4}]}
    first, rest, _, last = run_trial(runner, 1, PARAMS, 6, resume)
    assert first.resumed_epoch == 4 and last.done, (first, last)
    assert len(rest) == 2  # epochs 5 and 6 only
    for got, want in zip(rest, whole[4:], strict=True):
        assert got["val_loss"] == pytest.approx(want["val_loss"], rel=1e-5), (got, want)
    assert _callback_folders() <= before  # the callback's resume files are gone


def test_diverging_lightning_trial_is_stopped_by_the_probes_with_its_reason(
    tmp_path: Path,
) -> None:
    params = {**PARAMS, "lr": 50.0, "optimizer": "sgd"}
    before = _callback_folders()
    _, metrics, _, last = run_trial(_runner(tmp_path), 0, params, 6)
    assert last.stopped, last
    assert last.error is None
    assert len(metrics) <= 1, metrics
    checks = ("update_ratio", "nonfinite_grad", "nonfinite_loss", "loss_growth")
    assert last.stopped.split(":")[0] in checks, last.stopped
    assert _callback_folders() <= before  # cleaned up after a stop raised from a hook too


@pytest.mark.usefixtures("local_ray")
def test_lightning_study_runs_from_the_cli_and_pruning_ends_trials_cleanly(workdir: Path) -> None:
    path = write_study(
        workdir,
        name="lit",
        trials=6,
        epochs=4,
        task=TASK,
        search="""
          lr: {type: float, low: 1.0e-4, high: 3.0e-2, log: true}
          batch_size: 64
          dropout: 0.1
          hidden: 32
        """,
        extra="pruner: {type: median, warmup_epochs: 1, startup_trials: 2}\n",
    )
    out = run_here("run", str(path), cwd=workdir)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Study gate: PASS" in out.stdout
    study = optuna.load_study(study_name="lit", storage="sqlite:///sweeps.db")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert len(done) + len(pruned) == 6, [t.state for t in study.trials]
    assert done and all(len(t.intermediate_values) == 4 for t in done)
    assert pruned, "the median pruner stopped no trial (lr spans 1e-4 .. 3e-2)"
    reasons = [str(t.user_attrs.get("sweeper:stopped", "")) for t in pruned]
    for t, reason in zip(pruned, reasons, strict=True):  # ended where told, with the reason
        assert len(t.intermediate_values) < 4 and reason, t.user_attrs
    assert any(r.startswith("pruned by the pruner") for r in reasons), reasons
    model = sweeper.load_best_model("lit", storage="sqlite:///sweeps.db")
    assert type(model).__name__ == "LitDigits"  # the LightningModule, with its trained weights
    # exactly what the user built: no hook of sweeper's left on it, and its forward equals a
    # fresh LitDigits of theirs loaded with the same weights
    from sweeper.examples.digits import digits_split
    from sweeper.examples.lightning_digits import LitDigits

    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert not any(p._backward_hooks for p in model.parameters())
    fresh = LitDigits({**PARAMS, **study.best_params})
    fresh.load_state_dict(model.state_dict())
    fresh.eval()
    x = torch.as_tensor(digits_split()[1][:16])
    assert not model.training
    assert torch.equal(model(x), fresh(x))


def _digits_task(build: Any, loss: str) -> Any:
    from sweeper.examples.digits import digits_split

    x_tr, x_va, y_tr, y_va = (torch.as_tensor(a) for a in digits_split())
    return sweeper.Task(
        build_model=build, train=(x_tr, y_tr), val=(x_va, y_va), loss=loss, num_classes=10
    )


def test_gate_probes_the_modules_own_training_step_with_loss_model() -> None:
    from sweeper.examples.lightning_digits import LitDigits

    class WrongTargets(LitDigits):
        """A training_step that compares against the wrong targets (all zeros): its forward
        is healthy, only its own loss shows the bug."""

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            return F.cross_entropy(self(x), torch.zeros_like(y))

    healthy = sweeper.probe(_digits_task(LitDigits, "model"), PARAMS)
    assert healthy.verdict == "pass", [(f.probe, f.hint) for f in healthy.failures]
    # judged by its forward and a named loss the bug is invisible; by its own loss it is not
    assert sweeper.probe(_digits_task(WrongTargets, "cross_entropy"), PARAMS).verdict == "pass"
    broken = sweeper.probe(_digits_task(WrongTargets, "model"), PARAMS)
    assert {f.probe for f in broken.failures} & {"overfit_tiny", "short_fit_vs_baseline"}, [
        (f.probe, f.verdict) for f in broken.findings
    ]


def test_loss_model_names_a_training_step_that_returns_no_loss() -> None:
    from sweeper.examples.lightning_digits import LitDigits

    class NoReturn(LitDigits):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            F.cross_entropy(self(x), y)  # the return forgotten

    report = sweeper.probe(_digits_task(NoReturn, "model"), PARAMS)
    said = " ".join(str(f.hint) + str(f.measured) for f in report.findings)
    assert report.verdict == "fail" and "NoReturn.training_step" in said, said
    assert "return loss" in said and "test_lightning.py" in said, (
        said
    )  # Lightning's words, the line

    class NoReturnReluLogits(NoReturn):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(super().forward(x))  # a second, unrelated bug

    report = sweeper.probe(_digits_task(NoReturnReluLogits, "model"), PARAMS)
    raised = [f for f in report.failures if "raised" in f.details]
    assert raised, [(f.probe, f.verdict, f.hint) for f in report.findings]
    # the missing loss is a root cause of its own, not a consequence of the ReLU's finding
    assert raised[0].cause == "", (raised[0].probe, raised[0].cause)
    assert all(f.cause in ("", raised[0].probe) for f in raised), [
        (f.probe, f.cause) for f in raised
    ]
    assert "training_step" in str(raised[0].measured), raised[0].measured


RENDEZVOUS = """
import os, time
from pathlib import Path
from sweeper.examples.lightning_digits import lightning_digits_task

HERE = Path(__file__).parent


class HeldTrial:
    \"\"\"The trial, held after its 5th report until the test has killed its worker: the first
    run writes `reached` and waits; the re-run finds `reached` and goes on.\"\"\"

    def __init__(self, trial):
        self._trial, self._reports, self._hold = trial, 0, not (HERE / "reached").exists()

    def __getattr__(self, name):
        return getattr(self._trial, name)

    def report(self, metrics):
        self._trial.report(metrics)
        self._reports += 1
        if self._hold and self._reports == 5:
            (HERE / "reached").write_text(str(os.getpid()))
            while True:
                time.sleep(0.05)  # the test kills this process here


def task():
    t = lightning_digits_task()
    fit = t.fit
    t.fit = lambda params, trial: fit(params, HeldTrial(trial))
    return t
"""


def test_killed_lightning_trial_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    """The worker of a Lightning trial is SIGKILLed mid-trial (real CLI, Ray, SQLite): the
    re-run resumes from Lightning's checkpoint and trains only the epochs after it. The trial
    waits after its 5th epoch until the kill (a rendezvous, not a race with the clock)."""
    import os
    import signal

    from tests.conftest import assert_final, kill_group, start_cli, trials_of, wait_until

    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    epochs = 8
    (tmp_path / "held_lit.py").write_text(RENDEZVOUS)
    write_study(
        tmp_path,
        name="litkill",
        trials=1,
        epochs=epochs,
        task="held_lit:task",
        storage=url,
        search="""
          lr: 3.0e-3
          batch_size: 32
          dropout: 0.1
          hidden: 32
        """,
        extra="probes: {gate: off, watchdog_s: 600}\ncheckpoint: {every_epochs: 2}\n",
    )
    reached = tmp_path / "reached"
    proc = start_cli("run", "litkill.yaml", "--plain", cwd=tmp_path)
    try:
        wait_until("the Lightning trial held at epoch 5", reached.exists, proc=proc)
        victim = next(t for t in trials_of(url, "litkill") if t.state.name == "RUNNING")
        os.kill(
            int(reached.read_text() or 0) or victim.user_attrs["sweeper:worker"]["pid"],
            signal.SIGKILL,
        )
        out, _ = proc.communicate(timeout=300)
    finally:
        kill_group(proc)
    assert proc.returncode == 0, out
    trials = assert_final(url, "litkill", budget=1)
    rerun = next(t for t in trials if t.user_attrs.get("sweeper:retry_of") == victim.number)
    resumed = rerun.user_attrs["sweeper:resumed_from"]
    assert resumed["epoch"] >= 4, resumed  # from the checkpoint at epoch 4 (or 6), not epoch 0
    assert sorted(rerun.intermediate_values) == list(range(epochs))
    assert rerun.state == optuna.trial.TrialState.COMPLETE


def test_a_lightning_trials_check_gives_its_fix_in_lightnings_terms() -> None:
    from torch.utils.data import DataLoader, TensorDataset

    from sweeper.examples.digits import digits_split
    from sweeper.examples.lightning_digits import LitDigits, trainer
    from sweeper.integrations.lightning import SweeperCallback

    class EvalAtEpochStart(LitDigits):
        def on_train_epoch_start(self) -> None:
            self.eval()  # meant to freeze BatchNorm/Dropout statistics; stops all dropout

    x_tr, x_va, y_tr, y_va = (torch.as_tensor(a) for a in digits_split())
    trial = sweeper.Trial({"lr": 1e-3, "dropout": 0.3}, epochs=2)
    module = EvalAtEpochStart({"lr": 1e-3, "dropout": 0.3})
    train = DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(x_va, y_va), batch_size=512)
    with pytest.raises(sweeper.TrialStopped) as stop:
        trainer(trial, [SweeperCallback(trial)]).fit(module, train, val)
    assert stop.value.reason.startswith("eval_mode_training"), stop.value.reason
    assert "on_train_epoch_start" in stop.value.reason, stop.value.reason  # Lightning's hook
    assert (
        "call model.train()" not in stop.value.reason
    )  # a plain loop's fix, not a Lightning user's


def test_an_objective_the_module_never_logs_is_refused_before_any_trial(workdir: Path) -> None:
    path = write_study(
        workdir,
        name="unlogged",
        trials=4,
        epochs=3,
        task=TASK,
        search="""
          lr: 1.0e-3
          batch_size: 64
          dropout: 0.1
          hidden: 32
        """,
        extra="objective: {metric: val_acc, direction: maximize}\n",
    )
    out = run_here("run", str(path), "--plain", cwd=workdir)
    said = out.stdout + out.stderr
    assert out.returncode == 2, said
    assert "'val_acc' is never logged" in said and "did you mean 'val_accuracy'" in said, said
    assert "no trial was run" in said, said
    study = optuna.load_study(study_name="unlogged", storage="sqlite:///sweeps.db")
    assert study.trials == []


def test_the_gate_reads_the_names_lightning_will_log() -> None:
    from sweeper.examples.lightning_digits import LitDigits

    class Forked(LitDigits):
        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            loss = F.cross_entropy(self(x), y)
            self.log("train_loss", loss, on_step=True, on_epoch=True)  # forked: _step, _epoch
            return loss

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            x, y = batch
            self.log_dict({"val_loss": F.cross_entropy(self(x), y), "val_f1": 0.5})

    report = sweeper.probe(_digits_task(Forked, "model"), PARAMS)
    assert report.logged == (
        ["train_loss", "train_loss_epoch", "train_loss_step", "val_f1", "val_loss"],
        True,
    )

    class EpochEnd(Forked):
        def on_validation_epoch_end(self) -> None:
            self.log("val_auc", 0.9)  # one step cannot show this name

    assert sweeper.probe(_digits_task(EpochEnd, "model"), PARAMS).logged[1] is False
