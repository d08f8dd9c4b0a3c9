"""Checkpoints on a real folder store, through the real runner (no Ray): a resumed trial
continues exactly where the interrupted one was, a damaged file is skipped for the one before,
and a write that dies midway never replaces a good file."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest

import sweeper
from sweeper.checkpoint import Checkpoints, CorruptCheckpoint, checkpoint_id, pack, unpack
from sweeper.orchestrator._records import TrialUpdate
from sweeper.orchestrator._runner import TrialRunner
from sweeper.probes import Settings

PARAMS = {"lr": 3e-3, "batch_size": 64, "dropout": 0.2, "hidden": 32, "init": "none"}


def _runner(folder: Path, task: str = "sweeper.examples.digits:mlp_task") -> TrialRunner:
    return TrialRunner(
        task,
        {},
        [],
        Settings().model_dump(),
        False,
        1,
        {"location": str(folder), "study": "s", "every_epochs": 2, "keep_weights": True},
    )


def _run(
    runner: TrialRunner, number: int, epochs: int, resume: dict[str, Any] | None = None
) -> tuple[TrialUpdate, list[dict[str, float]], list[dict[str, Any]]]:
    """Trial `number` to its end: its start result, every epoch's metrics, what it saved."""
    first = runner.start(number, PARAMS, epochs, True, resume)
    assert first.error is None, first
    assert first.metrics is not None
    metrics, saved, out = [first.metrics], list(first.saved), first
    while out.metrics is not None and len(metrics) < epochs - (first.resumed_epoch or 0):
        out = runner.epoch()
        saved += out.saved
        if out.metrics is not None:
            metrics.append(out.metrics)
    assert runner.epoch().done, "the trial did not end after its last epoch"
    return first, metrics, saved


@pytest.mark.parametrize(
    "task", ["sweeper.examples.digits:mlp_task", "sweeper.examples.own_loop:own_loop_task"]
)
def test_resume_continues_exactly_where_the_interrupted_run_was(tmp_path: Path, task: str) -> None:
    runner = _runner(tmp_path, task)
    _, whole, saved = _run(runner, 0, 6)
    assert [s["epoch"] for s in saved if s["kind"] == "checkpoint"] == [2, 4]  # never the last
    assert [s["kind"] for s in saved].count("weights") == 1
    ckpts = [{"id": checkpoint_id("s", 0, e), "epoch": e} for e in (4, 2)]

    first, rest, _ = _run(runner, 1, 6, {"trial": 0, "checkpoints": ckpts})
    assert first.resumed_epoch == 4
    assert rest == whole[4:]  # same numbers: model, optimizer, shuffling and dropout RNG

    # the newest checkpoint is cut short, as by a crash mid-copy: the one before is used
    path = tmp_path / checkpoint_id("s", 0, 4)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    first, rest, _ = _run(runner, 2, 6, {"trial": 0, "checkpoints": ckpts})
    assert first.resumed_epoch == 2
    assert any("damaged" in n and "truncated" in n for n in first.notes), first.notes
    assert rest == whole[2:]


def test_no_usable_checkpoint_means_a_fresh_start_with_a_note(tmp_path: Path) -> None:
    runner = _runner(tmp_path)
    gone = [{"id": checkpoint_id("s", 9, 2), "epoch": 2}]
    first, metrics, _ = _run(runner, 3, 2, {"trial": 9, "checkpoints": gone})
    assert first.resumed_epoch is None and len(metrics) == 2
    assert any("starts afresh" in n for n in first.notes)


def test_pack_detects_truncation_and_damage() -> None:
    blob = pack({"w": __import__("torch").arange(10.0)})
    assert unpack(blob)["w"].sum().item() == 45.0
    for bad in (blob[:10], blob[:-1], blob[:-1] + bytes([blob[-1] ^ 1]), b"PK" + blob[2:]):
        with pytest.raises(CorruptCheckpoint):
            unpack(bad)


def test_a_write_that_dies_midway_leaves_the_old_file_whole(tmp_path: Path) -> None:
    store = Checkpoints(str(tmp_path), "s")
    store.write("a", pack({"v": 1}))

    class Dies(io.RawIOBase):
        def __init__(self) -> None:
            self.calls = 0

        def read(self, n: int = -1) -> bytes:
            self.calls += 1
            if self.calls > 1:
                raise OSError("No space left on device")
            return b"x" * 1000

    with pytest.raises(OSError, match="No space"):
        store.store.write("a", Dies())
    assert unpack(store.read("a")) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # no temporary file left


def test_trial_outside_sweeper_keeps_no_checkpoint() -> None:
    trial = sweeper.Trial({"lr": 0.1}, epochs=2)
    assert trial.restore() is None and trial.start_epoch == 0
    assert trial.checkpoint({"x": 1}) is False


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ("{every_epochs: -1}", "must be 0 (no checkpoints)"),
        ("{store: 's3://KEY:SECRET@bucket/x'}", "must not hold credentials"),
        ("{store: 'ftp://host/x'}", "s3://bucket/prefix or gs://bucket/prefix"),
        ("{keep_best: -2}", "greater than or equal to 0"),
    ],
)
def test_checkpoint_section_is_checked(section: str, problem: str) -> None:
    from sweeper.definition import parse_definition
    from sweeper.errors import DefinitionError

    text = (
        "name: x\ntask: m:t\nbudget: {trials: 1, epochs: 4}\n"
        "search: {lr: 0.1, batch_size: 8, dropout: 0.0}\n"
        f"checkpoint: {section}\n"
    )
    with pytest.raises(DefinitionError, match=re.escape(problem)):
        parse_definition(text)
    ok = parse_definition(text.replace(section, "{every_epochs: auto, store: 'gs://b/p'}"))
    assert ok.checkpoint.every_epochs == "auto" and ok.checkpoint.keep_best == 3
