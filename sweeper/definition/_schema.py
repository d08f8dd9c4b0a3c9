"""The typed study definition. Structure and every rule that needs no import of torch or ray."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from sweeper.catalog import INIT_SCHEMES, LOOP_METRICS, PRECISIONS, SCHEDULES
from sweeper.probes import GATE_PROBES, Thresholds

METRICS = LOOP_METRICS
# Params sweeper's loop reads itself (searched or fixed like any other), and their rules.
# The study gate's probes, in the order they run (sweeper.probes.GATE holds the code).
PARAM_TYPES = ("float", "int", "categorical", "fixed")


class _Strict(BaseModel):
    # strict: a boolean is not a number, a number is not a string (no silent coercion)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class FloatParam(_Strict):
    """A float hyperparameter searched in [low, high], on a log scale when `log`."""

    type: Literal["float"]
    log: bool = False
    low: float
    high: float
    step: float | None = None

    @field_validator("low")
    @classmethod
    def _low_positive_on_log(cls, v: float, info: ValidationInfo) -> float:
        if info.data.get("log") and v <= 0:
            raise ValueError(f"must be > 0 on a log scale, got {v:g}")
        return v

    @field_validator("high")
    @classmethod
    def _high_above_low(cls, v: float, info: ValidationInfo) -> float:
        low = info.data.get("low")
        if low is not None and v < low:
            raise ValueError(f"must be >= low ({low:g}), got {v:g}")
        return v

    @field_validator("step")
    @classmethod
    def _step_positive(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is not None and v <= 0:
            raise ValueError(f"must be > 0, got {v:g}")
        if v is not None and info.data.get("log"):
            raise ValueError("cannot be combined with log: true")
        return v


class IntParam(_Strict):
    """An integer hyperparameter searched in [low, high] (with `step`, or on a log scale)."""

    type: Literal["int"]
    log: bool = False
    low: int
    high: int
    step: int = 1

    @field_validator("low")
    @classmethod
    def _low_positive_on_log(cls, v: int, info: ValidationInfo) -> int:
        if info.data.get("log") and v < 1:
            raise ValueError(f"must be >= 1 on a log scale, got {v}")
        return v

    @field_validator("high")
    @classmethod
    def _high_above_low(cls, v: int, info: ValidationInfo) -> int:
        low = info.data.get("low")
        if low is not None and v < low:
            raise ValueError(f"must be >= low ({low}), got {v}")
        return v

    @field_validator("step")
    @classmethod
    def _step_positive(cls, v: int, info: ValidationInfo) -> int:
        if v < 1:
            raise ValueError(f"must be >= 1, got {v}")
        if v != 1 and info.data.get("log"):
            raise ValueError("cannot be combined with log: true")
        return v


Choice = Union[bool, int, float, str]  # noqa: UP007 (pydantic needs the runtime Union)


class CategoricalParam(_Strict):
    """A hyperparameter chosen among `choices`."""

    type: Literal["categorical"]
    choices: list[Choice] = Field(min_length=1)

    @field_validator("choices")
    @classmethod
    def _unique(cls, v: list[Choice]) -> list[Choice]:
        if len(set(map(repr, v))) != len(v):
            raise ValueError(f"must not repeat a choice, got {v}")
        return v


class FixedParam(_Strict):
    """A value passed to the model factory as is, not searched."""

    type: Literal["fixed"]
    value: Choice


class LrRange(FloatParam):
    """The learning rate: a float range whose low end must be positive."""

    @field_validator("low")
    @classmethod
    def _low_positive_on_log(
        cls, v: float, info: ValidationInfo
    ) -> float:  # replaces the parent check
        if v <= 0:
            raise ValueError(f"must be > 0, got {v:g}")
        return v


LrParam = Annotated[LrRange | FixedParam, Field(discriminator="type")]

Param = Annotated[
    FloatParam | IntParam | CategoricalParam | FixedParam, Field(discriminator="type")
]


def _as_param(v: Any) -> Any:
    """`weight_decay: 0.0` in YAML is shorthand for `{type: fixed, value: 0.0}`."""
    if isinstance(v, (bool, int, float, str)):
        return {"type": "fixed", "value": v}
    return v


class SearchSpace(BaseModel):
    """lr, batch_size, dropout and init are always searched or fixed; anything else the user
    names is passed to the model factory under its own name."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)
    __pydantic_extra__: dict[str, Param] = Field(init=False)

    lr: LrParam
    batch_size: Param
    dropout: Param
    init: Param = FixedParam(type="fixed", value="none")  # the model as build_model made it

    @model_validator(mode="before")
    @classmethod
    def _scalars_are_fixed(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: _as_param(v) for k, v in data.items()}
        return data

    @field_validator("lr")
    @classmethod
    def _lr_positive(cls, v: Any) -> Any:
        if isinstance(v, FixedParam) and (
            not isinstance(v.value, (int, float)) or isinstance(v.value, bool) or v.value <= 0
        ):
            raise ValueError(f"must be a number > 0, got {v.value!r}")
        return v

    @field_validator("batch_size")
    @classmethod
    def _batch_positive_ints(cls, v: Any) -> Any:
        values = _values_of(v)
        if isinstance(v, FloatParam) or any(
            isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in values
        ):
            raise ValueError(f"must be whole numbers >= 1, got {values}")
        return v

    @field_validator("dropout")
    @classmethod
    def _dropout_probability(cls, v: Any) -> Any:
        values = _values_of(v)
        if any(isinstance(x, (bool, str)) or not 0.0 <= float(x) < 1.0 for x in values):
            raise ValueError(f"must lie in [0, 1), got {values}")
        return v

    @field_validator("init")
    @classmethod
    def _known_init(cls, v: Any) -> Any:
        values = _values_of(v)
        if isinstance(v, (FloatParam, IntParam)):
            raise ValueError("must be `type: categorical` or a fixed scheme name")
        unknown = [x for x in values if x not in INIT_SCHEMES]
        if unknown:
            raise ValueError(f"unknown init scheme {unknown}; choose from {list(INIT_SCHEMES)}")
        return v

    @model_validator(mode="after")
    def _loop_params(self) -> SearchSpace:
        """precision, grad_clip, grad_accumulation, warmup_steps, schedule: values the loop
        can use, whether searched or fixed."""
        extra = self.__pydantic_extra__ or {}
        rules: dict[str, tuple[Any, str]] = {
            "precision": (lambda x: x in PRECISIONS, f"one of {list(PRECISIONS)}"),
            "schedule": (lambda x: x in SCHEDULES, f"one of {list(SCHEDULES)}"),
            "grad_clip": (
                lambda x: not isinstance(x, (bool, str)) and float(x) > 0,
                "a number > 0 (max gradient norm)",
            ),
            "grad_accumulation": (
                lambda x: isinstance(x, int) and not isinstance(x, bool) and x >= 1,
                "whole numbers >= 1",
            ),
            "warmup_steps": (
                lambda x: isinstance(x, int) and not isinstance(x, bool) and x >= 0,
                "whole numbers >= 0",
            ),
        }
        for name, (ok, rule) in rules.items():
            if name in extra:
                p = extra[name]
                values = _values_of(p)
                if (
                    isinstance(p, FloatParam)
                    and name != "grad_clip"
                    or not all(ok(v) for v in values)
                ):
                    raise ValueError(f"{name} must be {rule}, got {values}")
        return self

    def params(self) -> dict[str, Any]:
        """Every parameter, built-in ones first, as name -> spec."""
        out: dict[str, Any] = {
            "lr": self.lr,
            "batch_size": self.batch_size,
            "dropout": self.dropout,
            "init": self.init,
        }
        out.update(self.__pydantic_extra__ or {})
        return out


def _values_of(p: Any) -> list[Any]:
    if isinstance(p, CategoricalParam):
        return list(p.choices)
    if isinstance(p, FixedParam):
        return [p.value]
    return [p.low, p.high]


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
