"""Each `sweeper` command lives in its own module under sweeper/cli/commands/ with
`add_parser` and `run`, and the parser offers exactly those commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from sweeper.cli import build_parser
from sweeper.cli.commands import COMMANDS


def test_every_command_has_its_own_module_with_add_parser_and_run() -> None:
    folder = Path(COMMANDS[0].__file__).parent
    modules = {p.stem for p in folder.glob("*.py")} - {"__init__"}
    assert modules == {c.__name__.rsplit(".", 1)[1] for c in COMMANDS}
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == [c.__name__.rsplit(".", 1)[1] for c in COMMANDS]
    for command in COMMANDS:
        assert callable(command.add_parser) and callable(command.run), command.__name__
        assert command.__doc__, command.__name__
        name = command.__name__.rsplit(".", 1)[1]
        assert sub.choices[name].get_default("func") is command.run
