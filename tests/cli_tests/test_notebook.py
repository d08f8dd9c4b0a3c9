"""`sweeper.run` in a real Jupyter kernel (jupyter_client + ipykernel, as a notebook runs it):
progress prints in the cell as it comes, the kernel's interrupt (its stop button) ends the call
with the study kept, and the next call resumes it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_study

jupyter_client = pytest.importorskip("jupyter_client", reason="pip install -e '.[dev]'")
pytest.importorskip("ipykernel", reason="pip install -e '.[dev]'")


def _execute(kc: Any, code: str, timeout: float, on_output: Any = None) -> tuple[str, str]:
    """Run `code` in the kernel; its stream output and the error name, if it raised."""
    msg_id = kc.execute(code)
    out, error = [], ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except Exception:  # queue.Empty: nothing yet
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind in ("stream", "display_data"):  # rich renders to the notebook as display data
            text = content.get("text") or content.get("data", {}).get("text/plain", "")
            out.append(text if text.endswith("\n") else text + "\n")
            if on_output is not None:
                on_output("".join(out))
        elif kind == "error":
            error = content["ename"]
            out.append("\n".join(content.get("traceback", [])))
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(out), error
    raise AssertionError(f"the cell did not finish in {timeout} s: {''.join(out)[-2000:]}")


def test_sweeper_run_in_a_jupyter_kernel_shows_progress_and_stops_resumably(
    tmp_path: Path,
) -> None:
    path = write_study(tmp_path, task="sweeper.examples.digits:mlp_task", trials=40, epochs=3)
    store = f"sqlite:///{tmp_path / 'nb.db'}"
    km, kc = jupyter_client.manager.start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        first = f"import sweeper\nstudy = sweeper.run({str(path)!r}, storage={store!r})"
        interrupted = {"sent": False}

        def stop_after_two_trials(text: str) -> None:
            if not interrupted["sent"] and text.count("\ntrial ") >= 2:
                interrupted["sent"] = True
                km.interrupt_kernel()  # the notebook's stop button

        out, error = _execute(kc, first, timeout=300, on_output=stop_after_two_trials)
        assert interrupted["sent"], out[-2000:]
        assert "gate  data_finite" in out and "trial " in out
        assert error == "KeyboardInterrupt", (error, out[-2000:])
        assert "call sweeper.run again to resume" in out

        check = (
            "import optuna\n"
            f"s = optuna.load_study(study_name='tiny', storage={store!r})\n"
            "print('FINISHED', len([t for t in s.trials if t.state.is_finished()]))"
        )
        out, error = _execute(kc, check, timeout=60)
        assert not error and int(out.split("FINISHED")[1]) >= 2, out

        resume = (
            f"study = sweeper.run({str(path)!r}, storage={store!r}, trials=2)\n"
            "print('RESUMED', len(study.trials), study.gate_report.verdict)"
        )
        out, error = _execute(kc, resume, timeout=300)
        assert not error, out[-2000:]
        assert "not run again" in out and "RESUMED" in out
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
