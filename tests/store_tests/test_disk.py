"""A SQLite store that cannot write: a full disk mid-study, a read-only disk at start. Each
stops the run with a message naming the file, corrupts nothing, and the next run with the disk
fixed resumes. The disk is a small tmpfs of its own (needs root, as on CI)."""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from optuna.trial import TrialState

from tests.conftest import (
    FINISHED,
    assert_final,
    kill_group,
    run_cli,
    slow_study,
    start_cli,
    trials_of,
    wait_until,
)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB disk of its own, unmounted afterwards."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()!r}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _fill(folder: Path) -> Path:
    """Fill the disk to the last byte, as another program would."""
    filler = folder / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC
                break
    for size in (4096, 512, 1):  # and the last partial blocks
        try:
            with open(filler, "ab", buffering=0) as f:
                while True:
                    f.write(b"\0" * size)
        except OSError:
            pass
    return filler


def _finished(url: str, name: str) -> dict[int, tuple[object, ...]]:
    return {
        t.number: (t.state, t.value, t.params) for t in trials_of(url, name) if t.state in FINISHED
    }


def test_disk_full_stops_naming_the_file_then_resumes(tmp_path: Path, disk: Path) -> None:
    db = disk / "sweeps.db"
    url = f"sqlite:///{db}"
    slow_study(tmp_path, "full", url, trials=8, epochs=6, extra="checkpoint: {every_epochs: 2}\n")
    proc = start_cli("run", "full.yaml", "--plain", cwd=tmp_path)
    try:
        wait_until("two finished trials", lambda: len(_finished(url, "full")) >= 2, proc=proc)
        filler = _fill(disk)
        out, _ = proc.communicate(timeout=180)
    finally:
        kill_group(proc)
    assert proc.returncode == 1, out
    assert "is full" in out and str(db) in out and "run the same command" in out, out
    assert "Traceback" not in out, out
    kept = _finished(url, "full")

    filler.unlink()
    again = run_cli("run", "full.yaml", "--plain", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    trials = assert_final(url, "full", budget=8)
    for number, before in kept.items():  # what was recorded before the disk filled is intact
        t = trials[number]
        assert (t.state, t.value, t.params) == before
    assert all(len(t.intermediate_values) == 6 for t in trials if t.state == TrialState.COMPLETE)


def test_disk_read_only_store_is_named_then_resumes(tmp_path: Path, disk: Path) -> None:
    db = disk / "sweeps.db"
    url = f"sqlite:///{db}"
    slow_study(tmp_path, "ro", url, trials=4, epochs=3)
    first = run_cli("run", "ro.yaml", "--plain", "--trials", "2", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    kept = _finished(url, "ro")
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)

    out = run_cli("run", "ro.yaml", "--plain", cwd=tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert "not writable" in text and str(db) in text and "Traceback" not in text, text

    subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
    again = run_cli("run", "ro.yaml", "--plain", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    trials = assert_final(url, "ro", budget=4)
    assert {n: (trials[n].state, trials[n].value, trials[n].params) for n in kept} == kept
