"""The user's task: model factory, data, loss. Loaded from `module:function`."""

from sweeper.task._load import add_search_paths, check_task_ref, load_task, search_paths
from sweeper.task._task import KINDS, LOSSES, Task

__all__ = [
    "KINDS",
    "LOSSES",
    "Task",
    "add_search_paths",
    "check_task_ref",
    "load_task",
    "search_paths",
]
