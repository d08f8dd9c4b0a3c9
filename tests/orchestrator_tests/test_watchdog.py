"""A task that hangs or kills its process is named with the user's file and line, wherever it
happens: the gate's forward, a trial's third epoch (an own fit), a DataLoader worker, a
SIGSEGV or an os._exit in a trial. A hang fails its trial (reason `hang`) and the study goes
on; a crash is re-run once, and the same params crashing again fail with reason `crash`.

Every hang here is permanent (the task blocks for good at a named epoch), so the tests wait on
the watchdog's bound, not on the wall clock racing the task."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest

from sweeper import _watchdog as watchdog
from tests.conftest import run_here, trials_of, write_study

pytestmark = pytest.mark.usefixtures("local_ray")

TASK = """
import ctypes, os, signal, time
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from sweeper.examples.digits import CNN, digits_split
from sweeper.task import Task

MODE = {mode!r}


def block():
    while True:
        time.sleep(0.05)  # the user's code waits for good


class Rows(Dataset):
    def __init__(self, x, y, stuck):
        self.x, self.y, self.stuck = x, y, stuck

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        if self.stuck and i == 7:
            block()  # a DataLoader worker that never answers
        return self.x[i], self.y[i]


def task():
    x_tr, x_va, y_tr, y_va = digits_split()
    x, y = torch.as_tensor(x_tr)[:400], torch.as_tensor(y_tr)[:400]
    xv, yv = torch.as_tensor(x_va), torch.as_tensor(y_va)

    def fit(params, trial):
        model = CNN(8, float(params["dropout"]))
        opt = torch.optim.SGD(model.parameters(), lr=params["lr"], momentum=0.9)
        trial.watch(model, opt)
        bad = trial.number in (0, 1) if MODE == "segv" else trial.number == 0
        loader = None
        if MODE == "loader":
            loader = DataLoader(Rows(x, y, bad), batch_size=50, num_workers=1)
        for epoch in range(trial.epochs):
            if bad and epoch == 2 and MODE == "hang":
                block()
            if bad and epoch == 1 and MODE == "segv":
                ctypes.string_at(0)  # SIGSEGV in native code, in this thread
            if bad and epoch == 1 and MODE == "exit":
                os._exit(3)
            batches = loader if loader is not None else zip(x.split(50), y.split(50))
            for xb, yb in batches:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                acc = (model(xv).argmax(1) == yv).float().mean().item()
            trial.report({{"val_accuracy": acc}})

    return Task(fit=fit, build_model=lambda p: CNN(8, float(p["dropout"])), num_classes=10,
                train=(x, y), val=(xv, yv))
"""

PROBES = "probes: {gate: off, watchdog_floor_s: 3}\n"


def _run(folder: Path, mode: str, trials: int = 2, epochs: int = 4, extra: str = PROBES):
    (folder / "my_task.py").write_text(TASK.format(mode=mode))
    path = write_study(
        folder,
        task="my_task:task",
        trials=trials,
        epochs=epochs,
        extra=extra + "resources: {max_concurrent: 1}\n",
    )
    out = run_here("run", path.name, "--plain", cwd=folder)
    return out, trials_of(f"sqlite:///{folder / 'sweeps.db'}", "tiny")


def _error(trial: optuna.trial.FrozenTrial) -> str:
    return str(trial.user_attrs.get("sweeper:error", ""))


@pytest.mark.timeout(240)
def test_trial_hanging_in_its_third_epoch_fails_with_reason_hang_and_the_study_goes_on(
    tmp_path: Path,
) -> None:
    out, trials = _run(tmp_path, "hang")
    assert out.returncode == 0, out.stdout + out.stderr
    hung = trials[0]
    assert hung.state == optuna.trial.TrialState.FAIL
    assert hung.user_attrs.get("sweeper:reason") == "hang"
    text = _error(hung)
    assert re.search(r"my_task\.py:\d+ in block", text), text
    assert "made no progress" in text and "watchdog" in text
    assert len(hung.intermediate_values) == 2  # the two epochs it reported are kept
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2  # the study went on without the hung trial
    dump = Path(text.rpartition("stack: ")[2].strip())
    assert dump.is_file() and "Thread sweeper-trial" in dump.read_text()
    assert "hang" in out.stdout and "my_task.py" in out.stdout


@pytest.mark.timeout(240)
def test_dataloader_worker_that_never_answers_is_a_hang_named_at_the_users_loop(
    tmp_path: Path,
) -> None:
    out, trials = _run(tmp_path, "loader", trials=1, epochs=2)
    hung = trials[0]
    assert hung.state == optuna.trial.TrialState.FAIL, out.stdout + out.stderr
    assert hung.user_attrs.get("sweeper:reason") == "hang"
    assert re.search(r"my_task\.py:\d+ in fit", _error(hung)), _error(hung)


@pytest.mark.timeout(240)
def test_segfault_in_a_trial_is_named_and_the_same_params_crashing_twice_fail_as_crash(
    tmp_path: Path,
) -> None:
    out, trials = _run(tmp_path, "segv")
    first, second = trials[0], trials[1]
    assert first.state == optuna.trial.TrialState.FAIL, out.stdout + out.stderr
    assert "Segmentation fault" in _error(first) and "re-queued" in _error(first)
    assert re.search(r"my_task\.py:\d+ in fit", _error(first)), _error(first)
    assert second.params == first.params  # the re-run of the same configuration
    assert second.state == optuna.trial.TrialState.FAIL
    assert second.user_attrs.get("sweeper:reason") == "crash"
    assert "died before" in _error(second) and "re-queued" not in _error(second)
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2 and len(trials) == 4  # not retried a third time


@pytest.mark.timeout(240)
def test_os_exit_in_a_trial_is_named_from_the_workers_dump_and_run_again(tmp_path: Path) -> None:
    out, trials = _run(tmp_path, "exit")
    first = trials[0]
    assert first.state == optuna.trial.TrialState.FAIL, out.stdout + out.stderr
    assert "os._exit(3)" in _error(first), _error(first)
    assert re.search(r"my_task\.py:\d+ in fit", _error(first))
    again = trials[1]  # a crash seen once may be bad luck: the same params run again
    assert again.params == first.params and again.state == optuna.trial.TrialState.COMPLETE


@pytest.mark.timeout(240)
def test_gate_forward_that_never_returns_is_ended_by_the_watchdog_with_the_users_line(
    tmp_path: Path,
) -> None:
    task = (
        "import time\nfrom torch import nn\nfrom sweeper.examples.digits import mlp_task\n\n"
        "class Stuck(nn.Module):\n"
        "    def __init__(self, inner):\n        super().__init__()\n        self.inner = inner\n\n"
        "    def forward(self, x):\n"
        "        while True:\n            time.sleep(0.05)\n\n"
        "def task():\n    t = mlp_task()\n    inner = t.build_model\n"
        "    t.build_model = lambda p: Stuck(inner(p))\n    return t\n"
    )
    (tmp_path / "my_task.py").write_text(task)
    path = write_study(
        tmp_path, task="my_task:task", trials=1, epochs=1, extra="probes: {watchdog_s: 4}\n"
    )
    out = run_here("run", path.name, "--plain", cwd=tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "the study gate hung" in out.stderr, out.stderr
    assert re.search(r"my_task\.py:\d+ in forward", out.stderr), out.stderr
    assert "probes.watchdog_s" in out.stderr
    assert len(out.stderr.strip().splitlines()) <= 40


def test_watchdog_bound_comes_from_the_longest_silence_measured_with_a_floor(
    tmp_path: Path,
) -> None:
    # the bound's arithmetic, with the watchdog's thread stopped first: a live one would end
    # this process when the test moves its clock back
    w = watchdog.Watchdog(tmp_path / "w.txt", floor_s=5.0, factor=10.0, faults=False)
    w.close()
    w._thread.join(timeout=10)
    assert not w._thread.is_alive()
    fixed = watchdog.Watchdog(tmp_path / "f.txt", 5.0, 10.0, fixed_s=7.0, faults=False)
    fixed.close()
    assert fixed.bound() == 7.0
    w.arm("trial 0")
    assert w.bound() == 5.0  # nothing measured yet: the floor
    w.last -= 30.0  # the warm-up (build, first forward) is not a step
    w.beat()
    assert w.bound() == 5.0
    w.last -= 2.0  # a two-second step
    w.beat()
    assert w.bound() == pytest.approx(20.0, rel=0.05)
    w.pause()
    w.last -= 100.0  # waiting on the driver is not silence
    w.beat()
    assert w.bound() == pytest.approx(20.0, rel=0.05)


def test_faulthandler_dump_names_the_users_innermost_frame(tmp_path: Path) -> None:
    text = (
        "Fatal Python error: Segmentation fault\n\n"
        "Thread 0x00007f01 (most recent call first):\n"
        '  File "/usr/lib/python3.11/threading.py", line 320 in wait\n\n'
        "Current thread 0x00007f02 (most recent call first):\n"
        '  File "' + str(Path(torch_file())) + '", line 10 in _call_impl\n'
        '  File "/home/me/proj/model.py", line 42 in forward\n'
        '  File "/home/me/proj/train.py", line 7 in fit\n'
    )
    dump = watchdog.parse_dump(text, tmp_path / "d.txt")
    assert dump is not None and dump.kind == "signal"
    assert dump.where == "/home/me/proj/model.py:42 in forward"
    assert "Segmentation fault" in dump.describe()


def torch_file() -> str:
    import torch

    return torch.__file__


def test_a_crash_dump_names_the_part_of_the_work_the_process_died_in(tmp_path: Path) -> None:
    """The driver polls the gate about once a second, so the probe it last saw running may be
    several probes old when the process dies: the dump itself says which part was running."""
    import subprocess
    import sys

    script = (
        "import ctypes, sys\n"
        "from pathlib import Path\n"
        "from sweeper import _watchdog as w\n"
        "d = w.install(Path(sys.argv[1]), 'k', 60.0, 20.0, None)\n"
        "d.arm('the study gate')\n"
        "d.doing('label_leakage')\n"
        "d.doing('loss_shapes')\n"
        "ctypes.string_at(0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True)
    assert done.returncode != 0
    dump = watchdog.read_dump(tmp_path, "k")
    assert dump is not None and dump.kind == "signal", done.stderr
    assert dump.part == "loss_shapes" and "Segmentation fault" in dump.summary
    # a fresh piece of work starts with no part named
    w = watchdog.Watchdog(tmp_path / "again.txt", faults=False)
    w.doing("overfit_tiny")
    w.arm("trial 3")
    w.close()
    assert w.part == "" and (tmp_path / "again.txt").read_text() == ""
