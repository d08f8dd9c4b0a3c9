"""What a person reads about the end of a study: the verdict with its next steps, the
confirmation over seeds, and the stages. One wording, used by the run's summary, `sweeper
status`, the HTML report and the dashboard note."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from sweeper.diagnosis._verdict import Diagnosis
from sweeper.search import space_text
from sweeper.store import Ranking, is_confirmation, stage_of

LUCKY_SD = 2.0  # a single run this many standard deviations above its seeds' mean was lucky


def _v(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"


def diagnosis_lines(d: Diagnosis) -> list[str]:
    """The verdict in a line, then one line per next step (starting with '- ')."""
    if d.verdict is None:
        return [f"diagnosis: {d.note}"]
    gaps = f"bias {_v(d.bias)}, variance {_v(d.variance)}, high above {_v(d.tolerance)}" + (
        f"; trivial baseline {_v(d.baseline)}" if d.baseline is not None else ""
    )
    head = (
        f"diagnosis: {d.verdict.replace('_', ' ')} — {d.train_metric} {_v(d.train)}, "
        f"{d.metric} {_v(d.val)}, target {_v(d.target)} ({gaps}; trial {d.trial})"
    )
    return [head, *(f"- {step}" for step in d.next)]


def confirmation_lines(ranking: Ranking, metric: str) -> list[str]:
    """Each confirmed configuration's mean ± std over its new seeds; whether the best stands
    apart from the next by more than their spread; whether the single-seed best was lucky."""
    confirmed = [
        ranking.confirmed[t.number]
        for t in ranking.ordered()
        if t.number in ranking.confirmed and ranking.confirmed[t.number].mean is not None
    ]
    if not confirmed:
        return []
    lines = ["confirmed over new seeds (mean ± std; the search run's value):"]
    for c in confirmed:
        stopped = f", {c.unfinished} runs stopped or failed" if c.unfinished else ""
        lines.append(
            f"- trial {c.source}: {metric} {c.mean:.4f} ± {c.std:.4f} over {len(c.values)} "
            f"seeds (search run {c.search_value:.4f}{stopped})"
        )
    if len(confirmed) > 1:
        a, b = confirmed[0], confirmed[1]
        assert a.mean is not None and b.mean is not None
        gap, spread = abs(a.mean - b.mean), (a.std or 0.0) + (b.std or 0.0)
        if gap > spread:
            lines.append(
                f"the best two differ by more than their spread ({gap:.4f} > {spread:.4f}): "
                f"trial {a.source}'s configuration is better"
            )
        else:
            lines.append(
                f"the top configurations differ by less than their spread ({gap:.4f} <= "
                f"{spread:.4f}): they are as good as each other on this evidence; more seeds "
                "would tell them apart"
            )
    lucky = ranking.candidates[0] if ranking.candidates else None
    mine = ranking.confirmed.get(lucky.number) if lucky is not None else None
    if lucky is not None and mine is not None and mine.mean is not None:
        mean, std = mine.mean, mine.std or 0.0
        ahead = mine.search_value - mean if ranking.maximize else mean - mine.search_value
        head = f"the single-seed best (trial {lucky.number}, {mine.search_value:.4f})"
        if len(mine.values) < 2:
            lines.append(
                f"{head} gave {mean:.4f} on one new seed: two or more seeds "
                "(confirm.seeds) tell luck from spread"
            )
        elif ahead > LUCKY_SD * std:
            lines.append(
                f"{head} was lucky: its configuration averages {mean:.4f} ± {std:.4f} on new seeds"
            )
        else:
            lines.append(f"{head} held up on new seeds ({mean:.4f} ± {std:.4f})")
        if confirmed[0].source != lucky.number:
            lines.append(
                f"by its mean, trial {confirmed[0].source}'s configuration is the best "
                f"(`sweeper best` gives it)"
            )
    return lines


def front_confirmation_lines(ranking: Ranking, metrics: list[str]) -> list[str]:
    """Each confirmed member of the front: every objective's mean ± std over its new seeds,
    beside the search run's value (the front itself stays the search runs')."""
    confirmed = [c for c in ranking.confirmed.values() if c.runs]
    if not confirmed:
        return []
    lines = ["front members confirmed over new seeds (mean ± std; the search run's value):"]
    for c in sorted(confirmed, key=lambda c: c.source):
        stopped = f", {c.unfinished} runs stopped or failed" if c.unfinished else ""
        each = ", ".join(
            f"{m} {_v(o['mean'])} ± {_v(o['std'])} ({_v(o['search_value'])})"
            for m, o in c.objectives(metrics).items()
        )
        lines.append(f"- trial {c.source}: {each} over {len(c.runs)} seeds{stopped}")
    return lines


def stage_rows(
    trials: Sequence[FrozenTrial], stages: list[dict[str, Any]], narrowed: dict[str, Any]
) -> list[dict[str, Any]]:
    """Per stage: its number, trials and epochs planned, trials complete/pruned/failed, and
    the space it searched (None: the definition's whole space)."""
    rows = []
    for i, st in enumerate(stages, start=1):
        mine = [t for t in trials if not is_confirmation(t) and stage_of(t) == i]
        counts = {
            s: sum(t.state == getattr(TrialState, s.upper()) for t in mine)
            for s in ("complete", "pruned", "fail", "running", "waiting")
        }
        info = narrowed.get(str(i)) or {}
        rows.append(
            {
                "stage": i,
                "trials": st.get("trials"),
                "epochs": st.get("epochs"),
                "narrow": st.get("narrow"),
                "counts": {k: v for k, v in counts.items() if v},
                "space": info.get("space"),
                "narrowed_from": [info["from_top"], info["of"]] if info else None,
            }
        )
    return rows


def stage_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per stage: trials x epochs, how they ended, and the space it searched."""
    lines = []
    for r in rows:
        counts = ", ".join(f"{v} {k}" for k, v in r["counts"].items()) or "not started"
        space = "the whole space"
        if r["space"]:
            top, of = r["narrowed_from"]
            space = f"narrowed around the best {top} of {of}: {space_text(r['space'])}"
        lines.append(
            f"stage {r['stage']}: {r['trials']} trials x {r['epochs']} epochs ({counts}); {space}"
        )
    return lines
