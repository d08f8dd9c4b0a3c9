"""The definition's search space: the params a study searches or fixes, each with its rules
(ranges, log scales, steps, choices), and the params sweeper's own loop reads itself."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from sweeper.catalog import INIT_SCHEMES, PRECISIONS, SCHEDULES

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
    """lr and batch_size are always searched or fixed, dropout (default 0.0) and init
    (default "none") when the definition names them; anything else the user names is passed
    to the model factory under its own name."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)
    __pydantic_extra__: dict[str, Param] = Field(init=False)

    lr: LrParam
    batch_size: Param
    # optional: a model without Dropout needs none (its factory gets 0.0)
    dropout: Param = FixedParam(type="fixed", value=0.0)
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
