"""The typed study definition. Structure and every rule that needs no import of torch or ray;
the search space's params are in `_space.py`."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sweeper.catalog import INIT_SCHEMES, LOOP_METRICS, PRECISIONS, SCHEDULES
from sweeper.definition._space import (
    PARAM_TYPES,
    CategoricalParam,
    FixedParam,
    FloatParam,
    IntParam,
    SearchSpace,
    _Strict,
)
from sweeper.probes import GATE_PROBES, Thresholds

METRICS = LOOP_METRICS
__all__ = [
    "INIT_SCHEMES",
    "PARAM_TYPES",
    "PRECISIONS",
    "SCHEDULES",
    "CategoricalParam",
    "Definition",
    "FixedParam",
    "FloatParam",
    "IntParam",
    "SearchSpace",
]


class Objective(_Strict):
    """val_accuracy, val_loss, train_loss (sweeper's loop), or any key the task's metrics
    hook or its fit function reports (then `direction` is required)."""

    metric: str = Field(default="val_accuracy", pattern=r"^[A-Za-z_][A-Za-z0-9_.@/-]*$")
    direction: Literal["maximize", "minimize"] | None = None

    @model_validator(mode="after")
    def _direction_fits_metric(self) -> Objective:
        if self.metric not in METRICS:
            if self.direction is None:
                raise ValueError(
                    f"metric {self.metric!r} is the task's own: say whether to maximize or "
                    "minimize it (objective.direction)"
                )
            return self
        natural = "maximize" if self.metric == "val_accuracy" else "minimize"
        if self.direction is None:
            object.__setattr__(self, "direction", natural)
        elif self.direction != natural:
            raise ValueError(
                f"direction {self.direction!r} makes no sense for {self.metric}: use {natural!r}"
            )
        return self


class Budget(_Strict):
    """How much to run: trials, epochs per trial, and an optional time limit."""

    trials: int = Field(ge=1)
    epochs: int = Field(ge=1)
    timeout_s: float | None = Field(default=None, gt=0)
    max_consecutive_failures: int = Field(default=5, ge=1)


class Sampler(_Strict):
    """Optuna's sampler for the search, its seed, and the trials window it learns from."""

    type: Literal["tpe", "random"] = "tpe"
    seed: int | None = None
    startup_trials: int = Field(default=10, ge=0)
    # TPE fits on the `window` most recent finished trials (plus the best tenth as many of the
    # older ones): sweeper.search._window
    window: int | None = Field(default=None, ge=20)


class Pruner(_Strict):
    """Optuna's pruner that stops trials behind the others between epochs."""

    type: Literal["none", "median", "hyperband"] = "median"
    warmup_epochs: int = Field(default=2, ge=0)
    startup_trials: int = Field(default=5, ge=0)


class Probes(Thresholds):
    """Which probes run and how strictly; every threshold (see Thresholds) can be set here."""

    gate: Literal["strict", "warn", "off"] = "strict"
    trial: bool = True
    lr_cap: bool = True
    disable: list[str] = Field(default_factory=list)

    @field_validator("gate", mode="before")
    @classmethod
    def _yaml_booleans(cls, v: Any) -> Any:
        """`gate: on` means strict; `false`/`true` (and YAML 1.1's off/on) as off/strict."""
        if v is False:
            return "off"
        if v is True or v == "on":
            return "strict"
        return v

    @field_validator("disable")
    @classmethod
    def _known_probes(cls, v: list[str]) -> list[str]:
        unknown = [p for p in v if p not in GATE_PROBES]
        if unknown:
            raise ValueError(f"unknown probes {unknown}; gate probes are {list(GATE_PROBES)}")
        return v


class Resources(_Strict):
    """What one trial gets: CPUs, a GPU share (fractions pack small trials), and how many run at
    once."""

    cpus: float = Field(default=1, gt=0)
    gpus: float = Field(default=0, ge=0)
    max_concurrent: int | None = Field(default=None, ge=1)

    @field_validator("gpus")
    @classmethod
    def _fraction_or_whole(cls, v: float) -> float:
        if v > 1 and v != int(v):
            raise ValueError(f"must be a fraction <= 1 or a whole number, got {v:g}")
        return v


class Checkpoint(_Strict):
    """Trial checkpoints (resume after a crash) and the best trials' final weights."""

    every_epochs: int | Literal["auto"] = "auto"  # 0: never; auto: about once a minute
    keep_best: int = Field(default=3, ge=0)  # final weights kept for the K best trials
    store: str | None = None  # a folder, s3://bucket/prefix or gs://bucket/prefix

    @field_validator("every_epochs")
    @classmethod
    def _not_negative(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 0:
            raise ValueError("must be 0 (no checkpoints), a number of epochs, or auto")
        return v

    @field_validator("store")
    @classmethod
    def _no_credentials(cls, v: str | None) -> str | None:
        if v is not None and re.match(r"^\w+://[^/]*@", v):
            raise ValueError(
                "must not hold credentials; give them to the workers' environment "
                "(AWS_ACCESS_KEY_ID..., GOOGLE_APPLICATION_CREDENTIALS)"
            )
        if v is not None and re.match(r"^\w+://", v) and not re.match(r"^(s3|gs)://[^/]+", v):
            raise ValueError(
                f"must be a folder, s3://bucket/prefix or gs://bucket/prefix, got {v!r}"
            )
        return v


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_TASK = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$")


class Definition(_Strict):
    """A validated study definition: the task, the store, the objective, the search space, the
    budget, the probes, the resources and the checkpoints."""

    name: str
    description: str = ""
    task: str
    task_args: dict[str, Any] = Field(default_factory=dict)
    storage: str = "sqlite:///sweeps.db"
    artifacts: str | None = None  # folder for gate plots; default: beside the SQLite file
    objective: Objective = Field(default_factory=Objective)
    budget: Budget
    search: SearchSpace
    sampler: Sampler = Field(default_factory=Sampler)
    pruner: Pruner = Field(default_factory=Pruner)
    probes: Probes = Field(default_factory=Probes)
    resources: Resources = Field(default_factory=Resources)
    checkpoint: Checkpoint = Field(default_factory=Checkpoint)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"must be letters, digits, '_', '.', '-' (at most 128), got {v!r}")
        return v

    @field_validator("task")
    @classmethod
    def _module_colon_function(cls, v: str) -> str:
        if not _TASK.match(v):
            raise ValueError(f"must look like 'package.module:function', got {v!r}")
        return v

    @field_validator("storage")
    @classmethod
    def _sql_url(cls, v: str) -> str:
        if not re.match(r"^(sqlite|postgresql|mysql)(\+\w+)?://", v):
            raise ValueError(
                "must be an SQLAlchemy URL such as 'sqlite:///sweeps.db' or "
                "'postgresql+psycopg://user@host/db'"
            )
        return v

    @model_validator(mode="after")
    def _warmup_inside_epochs(self) -> Definition:
        if self.pruner.type != "none" and self.pruner.warmup_epochs >= self.budget.epochs:
            raise ValueError(
                f"pruner.warmup_epochs ({self.pruner.warmup_epochs}) must be < budget.epochs "
                f"({self.budget.epochs}), or nothing is ever pruned; lower it or set "
                "pruner.type: none"
            )
        return self
