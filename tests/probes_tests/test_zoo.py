"""Every broken setup is caught, with its cause named first; healthy ones never fail and warn
at most once."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import sweeper
from sweeper import Task
from tests.probes_tests.zoo import BROKEN, FLAGGED, HEALTHY

pytestmark = pytest.mark.filterwarnings("ignore:Using a target size:UserWarning")


def _table(report: sweeper.Report) -> str:
    return "\n".join(
        f"{f.probe}: {f.verdict} {f.measured} {f.cause and '<- ' + f.cause} {f.hint}"
        for f in report.findings
    )


def test_zoo_has_the_cases_the_issue_asks_for() -> None:
    assert len(BROKEN) >= 30 and len(HEALTHY) >= 12


@pytest.mark.parametrize("case", list(BROKEN), ids=[c.__name__ for c in BROKEN])
def test_zoo_broken_case_is_named_first_by_its_root_cause(case: Callable[[], Task]) -> None:
    report = sweeper.probe(case())
    assert report.verdict == "fail", _table(report)
    root = report.root_cause
    assert root is not None and root.probe == BROKEN[case], _table(report)
    assert root.hint, "a failure must say what to fix"
    assert report.root_causes[0] is root
    for f in report.failures:
        assert f is root or f.cause, f"{f.probe} neither root nor marked as a consequence"
    assert report.to_dict()["root_causes"][0] == BROKEN[case]


@pytest.mark.parametrize("case", HEALTHY, ids=[c.__name__ for c in HEALTHY])
def test_zoo_healthy_case_has_no_failure_and_at_most_one_warning(case: Callable[[], Task]) -> None:
    report = sweeper.probe(case())
    assert not report.failures, _table(report)
    assert len(report.warnings) <= 1, _table(report)


@pytest.mark.parametrize("case", list(FLAGGED), ids=[c.__name__ for c in FLAGGED])
def test_zoo_ambiguous_case_is_flagged_by_its_probe(case: Callable[[], Task]) -> None:
    report = sweeper.probe(case())
    assert report[FLAGGED[case]].verdict in ("warn", "fail"), _table(report)
