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
    values: dict[str, float] = field(default_factory=dict)  # several objectives: each one's

    def to_dict(self) -> dict[str, Any]:
        """The config as plain data, as `sweeper best --format json` prints it."""
        return asdict(self)


def top_configs(
    name: str, storage: str = DEFAULT_STORAGE, k: int | None = 1, pick: str | None = None
) -> list[BestConfig]:
    """The `k` best completed trials of study `name`, best first. A study with several
    objectives gives its Pareto front's members: the one `pick` names first (an objective
    it is best on, or "knee"; default: the first objective's best), then the others; `k`
    None: the whole front (one objective: the best)."""
    from optuna.trial import TrialState

    from sweeper.store import load_study, needs_ranking, study_ranking, trials_in_states

    study = load_study(storage, name)
    system = study._storage.get_study_system_attrs(study._study_id)
    if len(study.directions) > 1:
        return _front_configs(study, name, system, k, pick)
    metric = (study.metric_names or ["value"])[0]
    if pick is not None and pick != metric:
        raise SweeperError(
            f"pick {pick!r}: study {name!r} has one objective, {metric}; its best is the only pick"
        )
    maximize = study.direction.name == "MAXIMIZE"
    k = 1 if k is None else k
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
    return [_config(t, name, system, metric, maximize, confirmed.get(t.number)) for t in done[:k]]


def _config(
    t: Any,
    name: str,
    system: dict[str, Any],
    metric: str,
    maximize: bool,
    confirmed: Any = None,
    values: dict[str, float] | None = None,
    metrics: list[str] | None = None,
) -> BestConfig:
    from sweeper.store import attrs

    fixed = system.get(attrs.FIXED) or {}
    worker = dict(t.user_attrs.get(attrs.WORKER) or {})
    env = {key: worker[key] for key in ("torch", "device", "gpu_ids", "node") if key in worker}
    return BestConfig(
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
        confirmed=confirmed.to_dict(metrics) if confirmed is not None else None,
        stage=int(t.user_attrs[attrs.STAGE]) if attrs.STAGE in t.user_attrs else None,
        values=dict(values or {}),
    )


def _front_configs(
    study: Any, name: str, system: dict[str, Any], k: int | None, pick: str | None
) -> list[BestConfig]:
    from sweeper.store import needs_ranking, study_front, study_ranking

    # staged or confirmed: the trials read once, for the front and the confirmations
    ranking = study_ranking(study) if needs_ranking(system) else None
    front = study_front(study, ranking.trials if ranking is not None else None)
    if not front.members:
        raise StoreError(
            f"study {name!r} has no completed trial that keeps its constraints yet; run it "
            f"first (`sweeper status {name}` shows its progress)"
        )
    first = front.pick(pick)
    members = [first, *(t for t in front.members if t.number != first.number)]
    # confirmed members: every objective's mean ± std over their new seeds
    confirmed = ranking.confirmed if ranking is not None else {}
    return [
        _config(
            t,
            name,
            system,
            front.metrics[0],
            front.maximize[0],
            confirmed.get(t.number),
            values=front.values(t),
            metrics=front.metrics,
        )
        for t in members[:k]
    ]


def front_json(configs: list[BestConfig]) -> dict[str, Any]:
    """`sweeper best --format json` for several objectives: the front (the picked member
    first) and the picked member as a single-objective study's best reads."""
    sign = -1.0 if configs[0].direction == "maximize" else 1.0
    ordered = sorted(configs, key=lambda c: (sign * c.value, c.number))  # first objective's order
    front = [
        {
            "trial": c.number,
            "values": c.values,
            "params": c.params,
            **({"confirmed": c.confirmed} if c.confirmed is not None else {}),
        }
        for c in ordered
    ]
    return {"front": front, "picked": _export(configs[0])}


def configs_table(configs: list[BestConfig]) -> str:
    """`sweeper best --format table`: one row per config, its objectives' values (one
    objective: its value), then its params. A front is headed and its picked member marked."""
    front = bool(configs[0].values)
    names = list(configs[0].values) if front else [configs[0].metric]
    params = sorted({k for c in configs for k in c.params})
    head = ["", "trial", *names, *params]
    rows = [
        [
            "*" if front and i == 0 else "",
            str(c.number),
            *(f"{(c.values or {c.metric: c.value})[n]:.6g}" for n in names),
            *(_cell(c.params.get(p)) for p in params),
        ]
        for i, c in enumerate(configs)
    ]
    widths = [max(len(r[j]) for r in [head, *rows]) for j in range(len(head))]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
        for r in [head, *rows]
    ]
    if front:
        lines.insert(
            0,
            f"Pareto front of {configs[0].study!r}: {len(configs)} trials ({', '.join(names)}), "
            "* = picked",
        )
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def best_config(name: str, storage: str = DEFAULT_STORAGE, pick: str | None = None) -> BestConfig:
    """Load the best trial of study `name` from `storage`; for several objectives, the
    Pareto front's member `pick` names (an objective it is best on, or "knee"; default the
    first objective's best), with each objective's value in `values`.

    >>> best = sweeper.best_config("digits-mlp", storage="sqlite:///sweeps.db")
    >>> best.params["lr"], best.value, best.number
    """
    return top_configs(name, storage, 1, pick)[0]


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
    if best.values:
        out["values"] = best.values
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
