"""Fuzzing the door: every mutated definition is accepted or refused with exit 2, a message
and nothing written; never a traceback, never a hang."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from sweeper.definition import parse_definition
from sweeper.errors import DefinitionError
from tests.definition_tests.mutate import VALID, definitions


def check_parse(text: str) -> bool:
    """True if accepted; a DefinitionError is a refusal; anything else fails the test."""
    try:
        parse_definition(text, source="fuzz.yaml")
    except DefinitionError as e:
        assert str(e).startswith("fuzz.yaml: "), str(e)
        return False
    return True


def test_fuzz_the_valid_base_is_accepted() -> None:
    assert check_parse(VALID)


@settings(max_examples=400, deadline=None)
@given(definitions)
def test_fuzz_parse_accepts_or_refuses_with_a_definition_error(text: str) -> None:
    check_parse(text)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=definitions)
def test_fuzz_cli_validate_and_run_refuse_with_exit_2_and_write_nothing(
    tmp_path: Path, text: str
) -> None:
    import uuid

    folder = Path(tmp_path) / f"case-{uuid.uuid4().hex[:12]}"  # a text may come twice
    folder.mkdir()
    (folder / "s.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
    accepted = check_parse(text)
    commands = ["validate"] + ([] if accepted else ["run"])  # an accepted one would run
    for command in commands:
        out = subprocess.run(
            [sys.executable, "-m", "sweeper", command, "s.yaml"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "Traceback" not in out.stdout + out.stderr, out.stderr
        # an accepted definition may still name a task module that does not exist: exit 2 too
        assert out.returncode in ((0, 2) if accepted else (2,)), (command, out.stdout, out.stderr)
        if out.returncode == 2:
            assert out.stderr.startswith("error: "), out.stderr
        assert sorted(p.name for p in folder.iterdir()) == ["s.yaml"]
