"""The front ends: the `sweeper` command line, and `sweeper.run` for the same from Python."""

from sweeper.cli._main import build_parser, main
from sweeper.cli._python import run

__all__ = ["build_parser", "main", "run"]
