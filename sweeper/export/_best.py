"""The best configurations of a study, for the user's own training code."""

from __future__ import annotations

import json
import pprint
import re
import shlex
from dataclasses import asdict, dataclass, field
from typing import Any

from sweeper.errors import StoreError, SweeperError

DEFAULT_STORAGE = "sqlite:///sweeps.db"
FORMATS = ("json", "yaml", "python", "env")


@dataclass(frozen=True)
class BestConfig:
    """One finished trial: its params (fixed ones included), metric value and number, the hash
    of the study definition it came from, and where it ran (torch version, device)."""

    study: str
    params: dict[str, Any]
    value: float
    number: int
    metric: str
    direction: str
    definition_hash: str = ""
    environment: dict[str, Any] = field(default_factory=dict)
    user_attrs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # every metric of its last epoch
    # its configuration's values over new seeds: {mean, std, values, trials, search_value}
    confirmed: dict[str, Any] | None = None
    stage: int | None = None  # the stage it ran in (staged studies: the last)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data, as `sweeper best --format json` prints it."""
        return asdict(self)


def top_configs(name: str, storage: str = DEFAULT_STORAGE, k: int = 1) -> list[BestConfig]:
    """The `k` best completed trials of study `name`, best first."""
    from optuna.trial import TrialState

    from sweeper.store import attrs, load_study, needs_ranking, study_ranking, trials_in_states

    study = load_study(storage, name)
    system = study._storage.get_study_system_attrs(study._study_id)
    maximize = study.direction.name == "MAXIMIZE"
    confirmed: dict[int, Any] = {}
    if needs_ranking(system):  # stages, confirmations: the last stage, the best mean first
        ranking = study_ranking(study)
        done, confirmed = ranking.ordered(), ranking.confirmed
    elif k == 1:  # one ORDER BY ... LIMIT 1 query instead of reading every trial
        try:
            done = [study.best_trial]
        except ValueError:
            done = []
    else:
        done = trials_in_states(study._storage, study._study_id, (TrialState.COMPLETE,))
    if not done:
        raise StoreError(
            f"study {name!r} has no completed trial yet; run it first "
            f"(`sweeper status {name}` shows its progress)"
        )
    if k > 1 and not needs_ranking(system):
        # Optuna's best trial first (the one the dashboard shows, also on ties)
        first = study.best_trial
        rest = sorted(done, key=lambda t: (-t.values[0] if maximize else t.values[0], t.number))
        done = [first, *(t for t in rest if t.number != first.number)]
    fixed = system.get(attrs.FIXED) or {}
    metric = (study.metric_names or ["value"])[0]
    out = []
    for t in done[:k]:
        worker = dict(t.user_attrs.get(attrs.WORKER) or {})
        env = {key: worker[key] for key in ("torch", "device", "gpu_ids", "node") if key in worker}
        out.append(
            BestConfig(
                study=name,
                params={**fixed, **t.params},
                value=float(t.values[0]),
                number=t.number,
                metric=metric,
                direction="maximize" if maximize else "minimize",
                definition_hash=str(system.get(attrs.FINGERPRINT, "")),
                environment=env,
                user_attrs=dict(t.user_attrs),
                metrics=dict(t.user_attrs.get(attrs.METRICS) or {metric: float(t.values[0])}),
                confirmed=confirmed[t.number].to_dict() if t.number in confirmed else None,
                stage=int(t.user_attrs[attrs.STAGE]) if attrs.STAGE in t.user_attrs else None,
            )
        )
    return out


def best_config(name: str, storage: str = DEFAULT_STORAGE) -> BestConfig:
    """Load the best trial of study `name` from `storage`.

    >>> best = sweeper.best_config("digits-mlp", storage="sqlite:///sweeps.db")
    >>> best.params["lr"], best.value, best.number
    """
    return top_configs(name, storage, 1)[0]


def _export(best: BestConfig) -> dict[str, Any]:
    out = {
        "study": best.study,
        "metric": best.metric,
        "value": best.value,
        "trial": best.number,
        "definition_hash": best.definition_hash,
        "metrics": best.metrics,
        "environment": best.environment,
        "params": best.params,
    }
    if best.confirmed is not None:
        out["confirmed"] = best.confirmed
    if best.stage is not None:
        out["stage"] = best.stage
    return out


def _env_name(key: str) -> str:
    return "SWEEPER_" + re.sub(r"[^A-Za-z0-9]", "_", key).upper()


def render(configs: BestConfig | list[BestConfig], fmt: str, as_list: bool = False) -> str:
    """`configs` as json, yaml, python (a dict literal to paste) or env (KEY=value lines for
    `source`/`--env-file`). One config prints as an object unless `as_list`."""
    items = configs if isinstance(configs, list) else [configs]
    many = as_list or len(items) > 1
    data: Any = [_export(c) for c in items] if many else _export(items[0])
    if fmt == "json":
        return json.dumps(data, indent=2)
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(data, sort_keys=False)
    if fmt == "python":
        return "\n".join(_python(c, i if many else None) for i, c in enumerate(items))
    if fmt == "env":
        if many:
            raise SweeperError("--format env writes one config; use --top 1 or another format")
        best = items[0]
        lines = [
            f"SWEEPER_STUDY={shlex.quote(best.study)}",
            f"SWEEPER_METRIC={shlex.quote(best.metric)}",
            f"SWEEPER_VALUE={best.value!r}",
            f"SWEEPER_TRIAL={best.number}",
            f"SWEEPER_DEFINITION_HASH={best.definition_hash}",
        ]
        if best.confirmed and best.confirmed.get("mean") is not None:
            lines += [
                f"SWEEPER_CONFIRMED_MEAN={best.confirmed['mean']!r}",
                f"SWEEPER_CONFIRMED_STD={best.confirmed['std']!r}",
            ]
        lines += [f"{_env_name(k)}={shlex.quote(str(v))}" for k, v in best.params.items()]
        return "\n".join(lines)
    raise SweeperError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")


def _python(best: BestConfig, rank: int | None) -> str:
    env = ", ".join(f"{k} {v}" for k, v in best.environment.items() if k in ("torch", "device"))
    name = "BEST_PARAMS" if rank is None else f"PARAMS_{rank + 1}"
    return (
        f"# study {best.study!r}: {best.metric} = {best.value:.6g} (trial {best.number}, "
        f"definition {best.definition_hash or '?'})\n"
        + (f"# ran with {env}\n" if env else "")
        + (
            f"# over new seeds: {best.confirmed['mean']:.6g} ± {best.confirmed['std']:.3g} "
            f"({len(best.confirmed['values'])} runs)\n"
            if best.confirmed and best.confirmed.get("mean") is not None
            else ""
        )
        + f"{name} = {pprint.pformat(best.params, sort_dicts=False)}\n"
    )
