"""After the search: the bias/variance verdict on the best configuration with next steps from
the study's own evidence, and the words for it, the confirmation over seeds and the stages."""

from sweeper.diagnosis._read import (
    AfterSearch,
    after_search,
    diagnose,
    saved_or_fresh,
    stored_definition,
)
from sweeper.diagnosis._text import (
    confirmation_lines,
    diagnosis_lines,
    front_confirmation_lines,
    stage_lines,
    stage_rows,
)
from sweeper.diagnosis._verdict import VERDICTS, Diagnosis, bounded, judge

__all__ = [
    "VERDICTS",
    "AfterSearch",
    "after_search",
    "Diagnosis",
    "bounded",
    "confirmation_lines",
    "front_confirmation_lines",
    "diagnose",
    "diagnosis_lines",
    "judge",
    "saved_or_fresh",
    "stage_lines",
    "stage_rows",
    "stored_definition",
]
