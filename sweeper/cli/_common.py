"""What several commands share: the console, the default store, the task check, argument types."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Any

from sweeper.export import DEFAULT_STORAGE

__all__ = [
    "DEFAULT_STORAGE",
    "add_study_args",
    "check_task_found",
    "console",
    "positive",
    "with_storage",
]


def console(stderr: bool = False) -> Any:
    """A rich console; 100 columns in a log file or CI (rich's 80 there splits the gate table)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else 100
    return Console(stderr=stderr, highlight=False, width=width)


def check_task_found(loaded: Any) -> None:
    """The task module can be found by the one search rule (definition folder, working
    directory, installed packages), without running any of the user's code."""
    from sweeper.errors import TaskError
    from sweeper.task import add_search_paths, check_task_ref, search_paths

    add_search_paths(search_paths(loaded.path))
    problem = check_task_ref(loaded.spec.task)
    if problem:
        raise TaskError(f"{loaded.path}: task: {problem}")


def with_storage(loaded: Any, storage: str) -> Any:
    """The loaded definition with its store replaced (`--storage`)."""
    return replace(loaded, spec=loaded.spec.model_copy(update={"storage": storage}))


def positive(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def add_study_args(parser: argparse.ArgumentParser) -> None:
    """The arguments of a command about one stored study: its name and the store."""
    parser.add_argument("name", help="study name")
    parser.add_argument("--storage", default=DEFAULT_STORAGE, help="store URL (%(default)s)")
