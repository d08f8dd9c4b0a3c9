"""Import a user's `module:function` and call it to get a Task."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sweeper.errors import TaskError


def search_paths(definition_path: Path | None) -> list[str]:
    """Where a task module is looked for, first to last: the definition's folder, then the
    working directory (then installed packages). One rule for validate, probe, run, submit."""
    folders = [Path.cwd().resolve()]
    if definition_path is not None:
        folders.insert(0, definition_path.resolve().parent)
    return list(dict.fromkeys(str(f) for f in folders))


def add_search_paths(paths: Iterable[str]) -> None:
    """Make the user's task modules importable from `paths`, the first one first."""
    for p in reversed(list(paths)):
        if p in sys.path:
            sys.path.remove(p)
        if p:
            sys.path.insert(0, p)


def check_task_ref(ref: str) -> str | None:
    """Without running the user's code, say whether `module:function` can be found."""
    module = ref.partition(":")[0]
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as e:
        return f"cannot find module {module!r}: {e}"
    if spec is None:
        return (
            f"cannot find module {module!r}; put it next to the definition file, in the "
            "working directory, or install it (pip install -e .)"
        )
    return None


def load_task(ref: str, args: dict[str, Any] | None = None) -> Any:
    """Import `module:function`, call it with `args`, and check that it returns a Task."""
    from sweeper.task._task import Task

    module_name, _, func_name = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise TaskError(
                f"task {ref!r}: module {e.name!r} not found; put it next to the definition "
                "file or in the working directory, or install it"
            ) from None
        raise TaskError(f"task {ref!r}: importing it failed: {_last_line(e)}") from e
    except Exception as e:
        raise TaskError(f"task {ref!r}: importing it failed: {_last_line(e)}") from e
    func = getattr(module, func_name, None)
    if func is None:
        public = sorted(
            n for n in vars(module) if not n.startswith("_") and callable(getattr(module, n))
        )
        raise TaskError(
            f"task {ref!r}: module {module_name!r} has no {func_name!r}; callables there: {public}"
        )
    try:
        task = func(**(args or {}))
    except TaskError:
        raise
    except Exception as e:
        raise TaskError(f"task {ref!r}: calling it raised {_last_line(e)}") from e
    if not isinstance(task, Task):
        raise TaskError(
            f"task {ref!r} returned {type(task).__name__}; it must return sweeper.Task(...)"
        )
    return task


def _last_line(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(e).__name__}: {e}{where}"
