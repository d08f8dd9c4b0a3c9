"""`sweeper report`: one self-contained HTML file (plotly.js inlined, so it opens offline)."""

from __future__ import annotations

import datetime as dt
import warnings
from collections import Counter
from html import escape
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from sweeper._redact import redact
from sweeper.probes import Report, fmt
from sweeper.report._gate_plots import gate_plots

CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:13px}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4} .pass{color:#1a7f37} .warn{color:#9a6700} .fail{color:#cf222e}
.plots{display:flex;flex-wrap:wrap;gap:12px} pre{background:#f6f8fa;padding:1rem;overflow:auto}
"""


def _table(head: list[str], rows: list[list[str]]) -> str:
    """Cells are HTML already (escaped by the caller)."""
    h = "".join(f"<th>{escape(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _verdict(v: str | None) -> str:
    return f'<span class="{escape(v)}">{escape(v)}</span>' if v else ""


def _seconds(t: FrozenTrial) -> float:
    if t.datetime_start is None or t.datetime_complete is None:
        return 0.0
    return (t.datetime_complete - t.datetime_start).total_seconds()


def _figures(study: optuna.Study) -> list[tuple[str, str]]:
    """(title, HTML div) of Optuna's own plots; a plot the study cannot support yet (too few
    trials, one parameter) is left out with the reason."""
    from optuna import visualization as vis

    out = []
    plots: list[tuple[str, Any]] = [
        ("Optimization history", vis.plot_optimization_history),
        ("Parameter importances", vis.plot_param_importances),
        ("Parallel coordinates", vis.plot_parallel_coordinate),
        ("Slice plots", vis.plot_slice),
    ]
    names = list(study.metric_names or [])
    if len(study.directions) > 1:  # the front (Optuna's plot, infeasible trials apart), then
        # the other plots of the first objective (the one the pruner and the verdict use)
        first = names[0] if names else "objective 0"
        # importances are of reaching low values: a maximized objective is negated for them
        up = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
        plots = [
            ("Pareto front", lambda s: vis.plot_pareto_front(s, target_names=names or None)),
            *(
                (
                    f"{title} ({first})",
                    _first_of(plot, first, up and plot is vis.plot_param_importances),
                )
                for title, plot in plots
            ),
        ]
    for title, plot in plots:
        try:
            with warnings.catch_warnings():  # Optuna's note that a target's low values are
                # the goal: the first objective is negated for it when maximized (above)
                warnings.filterwarnings("ignore", message=".*computes the importances of")
                fig = plot(study)
            div = fig.to_html(full_html=False, include_plotlyjs=False)
        except Exception as e:  # e.g. importances need two or more completed trials
            div = f"<p><em>not available: {escape(str(e).splitlines()[0][:200])}</em></p>"
        out.append((title, div))
    return out


def _first_of(plot: Any, name: str, negate: bool = False) -> Any:
    """`plot` of a several-objective study on its first objective (`negate`d)."""
    sign = -1.0 if negate else 1.0
    return lambda study: plot(study, target=lambda t: sign * t.values[0], target_name=name)


def build_report(name: str, storage: str) -> str:
    """The report of study `name` as one HTML document."""
    from plotly.offline import get_plotlyjs

    from sweeper.diagnosis import after_search
    from sweeper.store import attrs, load_study

    study = load_study(storage, name)
    trials = study.get_trials(deepcopy=False)
    system = study._storage.get_study_system_attrs(study._study_id)
    gate = system.get(attrs.GATE)
    counts = Counter(t.state.name.lower() for t in trials)
    parts = [
        f"<h1>sweeper report: {escape(name)}</h1>",
        f"<p>store <code>{escape(redact(storage))}</code> · definition "
        f"<code>{escape(str(system.get(attrs.FINGERPRINT, '?')))}</code> · "
        f"{len(trials)} trials: {escape(', '.join(f'{k} {v}' for k, v in sorted(counts.items())))}"
        f" · made {dt.datetime.now().isoformat(timespec='seconds')}</p>",
    ]
    after = after_search(study)
    best = after.ranking.best()
    if best is not None:
        metric = (study.metric_names or ["value"])[0]
        confirmed = after.confirmed
        mean = (
            f" · over new seeds {confirmed.mean:.6g} ± {confirmed.std:.3g}"
            if confirmed is not None and confirmed.mean is not None
            else ""
        )
        parts.append(
            f"<h2>Best: {escape(metric)} = {best.values[0]:.6g} (trial {best.number}){mean}</h2>"
            f"<pre>{escape(str({**(system.get(attrs.FIXED) or {}), **best.params}))}</pre>"
        )
    else:
        parts.append("<h2>No completed trial yet</h2>")
    parts.append(_after_section(after.lines()))
    parts.append(_gate_section(gate))
    parts.append(_savings_section(trials))
    for title, div in _figures(study):
        parts.append(f"<h2>{escape(title)}</h2>{div}")
    parts.append(_trials_section(trials))
    definition = system.get(attrs.DEFINITION)
    if definition:
        parts.append(
            f"<details><summary>Study definition</summary><pre>{escape(redact(definition))}"
            "</pre></details>"
        )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>sweeper: {escape(name)}</title><style>{CSS}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>" + "\n".join(parts) + "</body></html>"
    )


def _after_section(lines: list[str]) -> str:
    """Stages, confirmation over seeds and the bias/variance verdict with its next steps."""
    if not lines:
        return ""
    html, items = ["<h2>After the search</h2>"], []
    for line in [*lines, ""]:
        if line.startswith("- "):
            items.append(f"<li>{escape(line[2:])}</li>")
            continue
        if items:
            html.append("<ul>" + "".join(items) + "</ul>")
            items = []
        if line:
            html.append(f"<p>{escape(line)}</p>")
    return "".join(html)


def _gate_section(stored: dict[str, Any] | None) -> str:
    if not stored:
        return "<h2>Study gate</h2><p>not run (probes.gate: off)</p>"
    gate = Report.from_dict(stored)
    model = gate.table()
    rows = [
        [
            escape(r.probe),
            _verdict(r.verdict),
            escape(r.measured),
            escape(r.expected),
            escape(r.hint),
        ]
        for r in model.rows
    ]
    plots = "".join(f"<div>{svg}</div>" for svg in gate_plots(gate).values())
    return (
        f"<h2>Study gate: {_verdict(model.verdict)} ({model.seconds:.1f}s)</h2>"
        + _table(["probe", "verdict", "measured", "expected", "hint"], rows)
        + f"<div class='plots'>{plots}</div>"
    )


def _savings_section(trials: list[FrozenTrial]) -> str:
    from sweeper.store import attrs

    stopped = [t for t in trials if attrs.SECONDS_SAVED in t.user_attrs]
    spent = sum(_seconds(t) for t in stopped)
    saved = sum(float(t.user_attrs[attrs.SECONDS_SAVED]) for t in stopped)
    total = sum(_seconds(t) for t in trials)
    if not stopped:
        return "<h2>Compute the probes saved</h2><p>No trial was stopped by a probe.</p>"
    return (
        "<h2>Compute the probes saved</h2>"
        f"<p>{len(stopped)} broken trials were stopped by per-trial probes after "
        f"{spent:.1f} trial-seconds; run to the end they would have cost {spent + saved:.1f}. "
        f"Saved: <b>{saved:.1f} trial-seconds</b> "
        f"({saved / max(total + saved, 1e-9):.0%} of what the study would have used).</p>"
    )


def _trials_section(trials: list[FrozenTrial]) -> str:
    from sweeper.store import attrs

    rows = []
    for t in trials:
        ua = t.user_attrs
        why = ua.get(attrs.ERROR) or ua.get(attrs.STOPPED) or ""
        rows.append(
            [
                str(t.number),
                escape(t.state.name.lower()),
                escape(fmt(t.values[0]) if t.values else ""),
                escape(", ".join(f"{k}={fmt(v)}" for k, v in t.params.items())),
                _verdict(ua.get(attrs.VERDICT)),
                escape(ua.get(attrs.PROBES, "")),
                escape(str(why)),
            ]
        )
    head = ["trial", "state", "value", "params", "probes", "probe results", "stopped / error"]
    return "<h2>Trials and their probes</h2>" + _table(head, rows)
