"""The best configuration of a study, for the user's own training code."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from sweeper.errors import StoreError

DEFAULT_STORAGE = "sqlite:///sweeps.db"


@dataclass(frozen=True)
class BestConfig:
    """The best finished trial: its params (fixed ones included), metric value and number."""

    study: str
    params: dict[str, Any]
    value: float
    number: int
    metric: str
    direction: str
    user_attrs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def best_config(name: str, storage: str = DEFAULT_STORAGE) -> BestConfig:
    """Load the best trial of study `name` from `storage`.

    >>> best = sweeper.best_config("digits-mlp", storage="sqlite:///sweeps.db")
    >>> best.params["lr"], best.value, best.number
    """
    from sweeper.store import attrs, load_study

    study = load_study(storage, name)
    try:
        trial = study.best_trial
    except ValueError:
        raise StoreError(
            f"study {name!r} has no completed trial yet; run it first "
            f"(`sweeper status {name}` shows its progress)"
        ) from None
    fixed = attrs.get_study_attr(study, attrs.FIXED, {}) or {}
    names = study.metric_names or ["value"]
    return BestConfig(
        study=name,
        params={**fixed, **trial.params},
        value=float(trial.values[0]),
        number=trial.number,
        metric=names[0],
        direction=study.direction.name.lower(),
        user_attrs=dict(trial.user_attrs),
    )


def render(best: BestConfig, fmt: str) -> str:
    data = {
        "study": best.study,
        "metric": best.metric,
        "value": best.value,
        "trial": best.number,
        "params": best.params,
    }
    if fmt == "json":
        return json.dumps(data, indent=2)
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(data, sort_keys=False)
    raise ValueError(f"unknown format {fmt!r}; choose json or yaml")
