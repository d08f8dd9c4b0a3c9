"""After the last round: the verdict on the best configuration, kept with the study, and the
lines the run ends with (stages, confirmation, verdict), also in the dashboard's note."""

from __future__ import annotations

import optuna

from sweeper.definition import Definition
from sweeper.diagnosis import after_search
from sweeper.orchestrator._recording import Outcome, Progress
from sweeper.report import publish_results
from sweeper.store import first_line, retrying


def wrap_up(
    study: optuna.Study, spec: Definition, outcome: Outcome, progress: Progress | None
) -> None:
    """Fill `outcome.after` and `outcome.diagnosis`; a failure here is reported, never a
    reason to lose the run (its trials are recorded already)."""

    def note(text: str) -> None:
        if progress is not None:
            progress.note(text)

    try:
        after = retrying(  # the trials the outcome ranked: not read again
            after_search, study, spec, True, outcome.ranking, what="diagnosing the best trial"
        )
        outcome.after, outcome.diagnosis = after.lines(), after.diagnosis
    except Exception as e:
        note(f"the bias/variance verdict could not be made: {first_line(e)}")
        return
    if not outcome.after:
        return
    try:
        retrying(
            publish_results, study, outcome.gate, outcome.after, what="saving the study's note"
        )
    except Exception as e:
        note(f"the dashboard note could not be written: {first_line(e)}")
