"""The `sweeper` command line."""

from sweeper.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
