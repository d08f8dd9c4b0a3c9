"""The typed study definition. Structure and every rule that needs no import of torch or ray;
the search space's params are in `_space.py`."""

from __future__ import annotations

import difflib
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sweeper.catalog import COST_METRICS, INIT_SCHEMES, LOOP_METRICS, PRECISIONS, SCHEDULES
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
    "Confirm",
    "Constraint",
    "Definition",
    "FixedParam",
    "FloatParam",
    "IntParam",
    "SearchSpace",
    "Stage",
]


class Objective(_Strict):
    """val_accuracy, val_loss, train_loss (sweeper's loop), or any key the task's metrics
    hook or its fit function reports (then `direction` is required)."""

    metric: str = Field(default="val_accuracy", pattern=r"^[A-Za-z_][A-Za-z0-9_.@/-]*$")
    direction: Literal["maximize", "minimize"] | None = None
    # the level aimed for (human-level or Bayes error's proxy), for the bias/variance verdict;
    # unset: a bounded metric's perfect score (accuracy 1.0)
    target: float | None = None

    @model_validator(mode="after")
    def _direction_fits_metric(self) -> Objective:
        _known_cost(self.metric)
        if self.metric in COST_METRICS:
            if self.direction == "maximize":
                raise ValueError(
                    f"direction 'maximize' makes no sense for {self.metric} (a cost): use "
                    "'minimize'"
                )
            object.__setattr__(self, "direction", "minimize")
            return self
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


def _known_cost(metric: str) -> None:
    """A name that is a near miss of a cost sweeper measures is a typo, not the task's own
    metric (which would then never be reported)."""
    if metric in COST_METRICS or metric in METRICS:
        return
    near = difflib.get_close_matches(metric, list(COST_METRICS), n=1, cutoff=0.75)
    if near:
        raise ValueError(
            f"unknown cost metric {metric!r}: did you mean {near[0]!r}? sweeper measures "
            f"{', '.join(COST_METRICS)}"
        )


class Constraint(_Strict):
    """A bound a trial must keep to be picked: `{metric: latency_ms, max: 5.0}`, `min:`, or
    both. The metric is a cost sweeper measures or any metric the trial reports. Infeasible
    trials are recorded (Optuna's constraints, which its samplers and dashboard read) and
    never picked."""

    metric: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.@/-]*$")
    max: float | None = None
    min: float | None = None

    @model_validator(mode="after")
    def _a_bound(self) -> Constraint:
        _known_cost(self.metric)
        if self.max is None and self.min is None:
            raise ValueError(f"constraint on {self.metric!r} has no bound: give max:, min: or both")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(
                f"constraint on {self.metric!r}: min {self.min:g} > max {self.max:g}, no trial "
                "can keep it"
            )
        return self

    def describe(self) -> str:
        """The bound as a reader writes it: `params <= 30000`, `acc >= 0.9 and <= 0.95`."""
        bounds = [f">= {self.min:g}"] if self.min is not None else []
        if self.max is not None:
            bounds.append(f"<= {self.max:g}")
        return f"{self.metric} {' and '.join(bounds)}"

    def violation(self, value: float | None) -> float:
        """Optuna's constraint value: <= 0 when `value` keeps the bound, else by how much it
        misses (a missing or non-finite value misses by 1)."""
        if value is None or value != value or value in (float("inf"), float("-inf")):
            return 1.0
        misses = [value - self.max] if self.max is not None else []
        if self.min is not None:
            misses.append(self.min - value)
        return max(misses)


class Costs(_Strict):
    """How the costs are measured: `batch`, the rows of the input latency_ms times a forward
    of (1: a single request)."""

    batch: int = Field(default=1, ge=1)


class Budget(_Strict):
    """How much to run: trials, epochs per trial, and an optional time limit."""

    trials: int = Field(ge=1)
    epochs: int = Field(ge=1)
    timeout_s: float | None = Field(default=None, gt=0)
    max_consecutive_failures: int = Field(default=5, ge=1)


class Stage(_Strict):
    """One stage of a coarse-to-fine search: its trials and epochs per trial; a stage after the
    first searches the space narrowed around the best `narrow` share of the stage before."""

    trials: int = Field(ge=1)
    epochs: int = Field(ge=1)
    narrow: float = Field(default=0.25, gt=0, le=1)


class Confirm(_Strict):
    """After the search, the `top` best distinct configurations train again with `seeds` new
    seeds each, for the full epochs; the best is then the configuration with the best mean."""

    top: int = Field(default=3, ge=1)
    seeds: int = Field(default=3, ge=1)


class Sampler(_Strict):
    """Optuna's sampler for the search, its seed, and the trials window it learns from."""

    type: Literal["tpe", "random", "nsga2"] = "tpe"
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
    # several at once: the Pareto front (`objective` is then the first of them, the one the
    # pruner acts on and the bias/variance verdict speaks of)
    objectives: list[Objective] | None = Field(default=None, min_length=1)
    constraints: list[Constraint] = Field(default_factory=list)
    costs: Costs = Field(default_factory=Costs)
    budget: Budget
    search: SearchSpace
    sampler: Sampler = Field(default_factory=Sampler)
    pruner: Pruner = Field(default_factory=Pruner)
    probes: Probes = Field(default_factory=Probes)
    resources: Resources = Field(default_factory=Resources)
    checkpoint: Checkpoint = Field(default_factory=Checkpoint)
    stages: list[Stage] | None = Field(default=None, min_length=1)
    confirm: Confirm | None = None

    @model_validator(mode="before")
    @classmethod
    def _budget_from_stages(cls, data: Any) -> Any:
        """With `stages`, budget.trials and budget.epochs may be left out: they are the stages'
        sum of trials and the last stage's epochs (given, they must say the same)."""
        if not isinstance(data, dict) or not isinstance(data.get("stages"), list):
            return data
        stages = data["stages"]
        if not stages or not all(
            isinstance(st, dict)
            and isinstance(st.get("trials"), int)
            and isinstance(st.get("epochs"), int)
            for st in stages
        ):
            return data  # the stages' own errors say what is wrong
        budget = data.get("budget", {})
        if not isinstance(budget, dict):
            return data
        trials = sum(int(st["trials"]) for st in stages)
        epochs = int(stages[-1]["epochs"])
        for key, value in (("trials", trials), ("epochs", epochs)):
            if key in budget and budget[key] != value:
                what = "the stages' trials add up to" if key == "trials" else "the last stage has"
                raise ValueError(
                    f"budget.{key} is {budget[key]!r} but {what} {value}: leave budget.{key} "
                    "out when the definition has stages"
                )
        return {**data, "budget": {**budget, "trials": trials, "epochs": epochs}}

    @field_validator("stages")
    @classmethod
    def _stages_grow(cls, v: list[Stage] | None) -> list[Stage] | None:
        if v is not None:
            for i in range(1, len(v)):
                if v[i].epochs < v[i - 1].epochs:
                    raise ValueError(
                        f"stage {i + 1} has fewer epochs ({v[i].epochs}) than stage {i} "
                        f"({v[i - 1].epochs}): a later stage trains at least as long"
                    )
        return v

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
        # with stages, budget.epochs is the last stage's: a shorter stage may prune nothing
        if self.pruner.type != "none" and self.pruner.warmup_epochs >= self.budget.epochs:
            raise ValueError(
                f"pruner.warmup_epochs ({self.pruner.warmup_epochs}) must be < budget.epochs "
                f"({self.budget.epochs}), or nothing is ever pruned; lower it or set "
                "pruner.type: none"
            )
        return self

    @model_validator(mode="after")
    def _objectives_agree(self) -> Definition:
        if self.objectives is None:
            if self.sampler.type == "nsga2":
                raise ValueError(
                    "sampler.type nsga2 searches several objectives: list them under "
                    "`objectives:`, or use tpe for one"
                )
            return self._constraints_agree()
        if "objective" in self.model_fields_set:
            raise ValueError(
                "give either `objective:` (one metric) or `objectives:` (several), not both"
            )
        names = [o.metric for o in self.objectives]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"objectives name {', '.join(twice)} more than once")
        if names[0] in COST_METRICS:
            raise ValueError(
                f"objectives: list the trial's own metric first, not the cost {names[0]}: the "
                "first objective is reported every epoch, the pruner acts on it and the "
                "verdict speaks of it (a cost is measured once, at the trial's end)"
            )
        object.__setattr__(self, "objective", self.objectives[0])
        if len(self.objectives) == 1:  # one objective, however written: the same study
            object.__setattr__(self, "objectives", None)
            return self._constraints_agree()
        not_yet = [
            (self.pruner.type == "hyperband", "pruner.type hyperband"),
            (self.sampler.window is not None, "sampler.window"),
        ]
        for on, what in not_yet:
            if on:
                raise ValueError(
                    f"{what} works with one objective only for now; drop it, or search one "
                    "objective (the others as `constraints:`)"
                )
        return self._constraints_agree()

    def _constraints_agree(self) -> Definition:
        directions = {o.metric: o.direction for o in self.goals()}
        bounds: dict[str, list[float | None]] = {}
        for c in self.constraints:
            lo_hi = bounds.setdefault(c.metric, [None, None])
            if c.min is not None:
                lo_hi[0] = c.min if lo_hi[0] is None else max(lo_hi[0], c.min)
            if c.max is not None:
                lo_hi[1] = c.max if lo_hi[1] is None else min(lo_hi[1], c.max)
            lo, hi = lo_hi
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(
                    f"the constraints on {c.metric!r} ask for >= {lo:g} and <= {hi:g}: no "
                    "trial can keep both"
                )
            way = directions.get(c.metric)
            pushes = "maximize" if c.max is not None else "minimize"
            if way is not None and way == pushes and (c.min is None or c.max is None):
                bound = "max" if c.max is not None else "min"
                raise ValueError(
                    f"{c.metric!r} is an objective to {way} and a constraint's {bound} caps "
                    f"it: the search would push every trial against the cap. Keep it as the "
                    "objective, or as a constraint, not both"
                )
        return self

    def goals(self) -> list[Objective]:
        """The objectives the search optimizes, in order (one for a single `objective:`)."""
        return list(self.objectives) if self.objectives else [self.objective]

    def maximized(self) -> list[bool]:
        """Whether each objective (in `goals` order) is maximized."""
        return [o.direction == "maximize" for o in self.goals()]

    def cost_metrics(self) -> list[str]:
        """The costs sweeper measures for this study: those an objective or a constraint
        names."""
        named = [o.metric for o in self.goals()] + [c.metric for c in self.constraints]
        return [m for m in COST_METRICS if m in named]

    def stage_plan(self) -> list[Stage]:
        """The stages the search runs: the definition's, or one stage of the whole budget."""
        if self.stages:
            return list(self.stages)
        return [Stage(trials=self.budget.trials, epochs=self.budget.epochs, narrow=1.0)]
