"""sweeper: sanity-probe a PyTorch training setup, then search its hyperparameters.

Public surface (imported lazily: `import sweeper` loads neither torch nor ray):

    sweeper.Task(build_model=..., train=(X, y), val=(X, y), loss=..., kind=..., num_classes=...,
                 optimizer=..., scheduler=..., metrics=..., collate_fn=..., loader=...,
                 init_modules=..., fit=...)
    sweeper.Trial(params)                     -> what fit(params, trial) gets: report, watch,
                                                 step, checkpoint, restore
    sweeper.TrialStopped                      -> raised in fit when the pruner or a probe stops it
    sweeper.probe(task, params=None)          -> Report with findings
    sweeper.best_config(name, storage=...)    -> BestConfig(params, value, number, ...)
    sweeper.top_configs(name, storage=..., k) -> the k best, best first
    sweeper.load_best_model(name, storage=...) -> the task's model with the best trial's weights
    sweeper.apply_init(model, scheme, modules=None) -> the init code trials used
    sweeper.load_definition(path)             -> a validated study definition
    sweeper.run(definition, trials=, storage=) -> a study run from Python: the optuna.Study
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and editors see; at run time each is imported on use
    from sweeper.cli import run
    from sweeper.definition import load_definition
    from sweeper.errors import SweeperError, TrialStopped
    from sweeper.export import BestConfig, best_config, load_best_model, top_configs
    from sweeper.orchestrator import run_study
    from sweeper.probes import Finding, Report, probe
    from sweeper.task import Task
    from sweeper.training import Trial, apply_init

__version__ = "0.1.0"

_LAZY = {
    "Task": ("sweeper.task", "Task"),
    "Trial": ("sweeper.training", "Trial"),
    "TrialStopped": ("sweeper.errors", "TrialStopped"),
    "probe": ("sweeper.probes", "probe"),
    "Report": ("sweeper.probes", "Report"),
    "Finding": ("sweeper.probes", "Finding"),
    "best_config": ("sweeper.export", "best_config"),
    "BestConfig": ("sweeper.export", "BestConfig"),
    "top_configs": ("sweeper.export", "top_configs"),
    "load_best_model": ("sweeper.export", "load_best_model"),
    "apply_init": ("sweeper.training", "apply_init"),
    "load_definition": ("sweeper.definition", "load_definition"),
    "run_study": ("sweeper.orchestrator", "run_study"),
    "run": ("sweeper.cli", "run"),
    "SweeperError": ("sweeper.errors", "SweeperError"),
}

__all__ = [
    "BestConfig",
    "Finding",
    "Report",
    "SweeperError",
    "Task",
    "Trial",
    "TrialStopped",
    "apply_init",
    "best_config",
    "load_best_model",
    "load_definition",
    "probe",
    "run",
    "run_study",
    "top_configs",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        if name == "Trial":
            _local_checks()
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sweeper' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


def _local_checks() -> None:
    """`sweeper.Trial(params)` built to try a fit locally gets the per-trial checks a study's
    fit-only trial gets (the training layer cannot import the probes above it: the probes'
    monitor is handed down here, where both are known)."""
    from sweeper.probes import Settings, TrialMonitor
    from sweeper.training import _trial

    def monitor(epochs: int) -> Any:
        return TrialMonitor(Settings(), first_forward=True, epochs=epochs, own_loop=True)

    _trial.LOCAL_MONITOR = monitor
