"""The healthy corpus of real architectures passes the gate: no failure, and every warning or
skip says why. A gate that fails a healthy project gets switched off."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import sweeper
from sweeper import Task
from tests.probes_tests.corpus import CORPUS

pytest.importorskip("transformers", reason="the corpus's Hugging Face models need transformers")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def _table(report: sweeper.Report) -> str:
    return "\n".join(
        f"{f.probe}: {f.verdict} {sweeper.probes.fmt(f.measured)} {f.hint}" for f in report.findings
    )


def test_corpus_has_the_architectures_the_issue_asks_for() -> None:
    assert len(CORPUS) >= 25


@pytest.mark.parametrize("case", CORPUS, ids=[c.__name__ for c in CORPUS])
def test_corpus_model_passes_the_gate_without_a_failure(case: Callable[[], Task]) -> None:
    report = sweeper.probe(case())
    assert not report.failures, _table(report)
    assert len(report.warnings) <= 1, _table(report)
    for f in report.findings:
        if f.verdict in ("warn", "skip"):
            assert f.hint or isinstance(f.measured, str), (
                f"{f.probe} says nothing: {_table(report)}"
            )
