"""`sweeper init`: a starter that validates as written and never overwrites by accident."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli


def test_init_writes_a_starter_that_validates_and_keeps_existing_files(tmp_path: Path) -> None:
    out = run_cli("init", "cancer", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    definition, module = tmp_path / "cancer.yaml", tmp_path / "cancer_task.py"
    assert definition.exists() and module.exists()
    text = definition.read_text()
    assert "low: 1.0e-4, high: 1.0e-1, log: true" in text  # the checklists' defaults
    assert "[16, 32, 64, 128]" in text and "kaiming_normal" in text and "median" in text

    checked = run_cli("validate", "cancer.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "OK" in checked.stdout

    module.write_text(module.read_text() + "\n# my edits\n")
    again = run_cli("init", "cancer", cwd=tmp_path)
    assert again.returncode == 2
    assert "already exist" in again.stderr and "--force" in again.stderr
    assert module.read_text().endswith("# my edits\n")  # nothing overwritten

    forced = run_cli("init", "cancer", "--force", cwd=tmp_path)
    assert forced.returncode == 0
    assert "# my edits" not in module.read_text()

    bad = run_cli("init", "no spaces", cwd=tmp_path)
    assert bad.returncode == 2 and "letters, digits" in bad.stderr
