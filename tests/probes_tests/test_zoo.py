"""Every broken setup is caught by the probe that names its cause; healthy ones never fail."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import sweeper
from sweeper import Task
from tests.probes_tests.zoo import BROKEN, HEALTHY


def _table(report: sweeper.Report) -> str:
    return "\n".join(f"{f.probe}: {f.verdict} {f.measured} {f.hint}" for f in report.findings)


@pytest.mark.parametrize("case", list(BROKEN), ids=[c.__name__ for c in BROKEN])
def test_zoo_broken_case_is_caught_by_its_probe(case: Callable[[], Task]) -> None:
    report = sweeper.probe(case())
    finding = report[BROKEN[case]]
    assert finding.verdict == "fail", _table(report)
    assert finding.hint, "a failure must say what to fix"
    assert report.verdict == "fail"


@pytest.mark.parametrize("case", HEALTHY, ids=[c.__name__ for c in HEALTHY])
def test_zoo_healthy_case_has_no_failure(case: Callable[[], Task]) -> None:
    report = sweeper.probe(case())
    assert not report.failures, _table(report)
