"""6. Fuzzing the door: the long run of the suite's fuzz test. Mutated study definitions
(dropped and duplicated keys, swapped types, random unicode, truncation, extreme numbers) go
through the definition loader; each must be accepted or refused with a DefinitionError. Counts
what was accepted and refused, and what broke (the smallest failing definition, shrunk by
Hypothesis), if anything did."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from hypothesis import given, settings


def run(quick: bool) -> dict[str, Any]:
    from tests.definition_tests.mutate import definitions
    from tests.definition_tests.test_fuzz import check_parse

    examples = 300 if quick else 20_000
    seen: Counter[str] = Counter()

    @settings(max_examples=examples, deadline=None, database=None)
    @given(definitions)
    def fuzz(text: str) -> None:
        seen["accepted" if check_parse(text) else "refused"] += 1

    t0 = time.perf_counter()
    broke = ""
    try:
        fuzz()
    except Exception as e:  # what the fuzzing found: reported, not raised
        broke = f"{type(e).__name__}: {str(e)[:300]}"
    seconds = time.perf_counter() - t0
    row = {
        "examples": seen["accepted"] + seen["refused"],
        "accepted": seen["accepted"],
        "refused": seen["refused"],
        "per_example_ms": round(1000 * seconds / max(1, sum(seen.values())), 2),
        "broke": broke or "nothing",
    }
    return {"rows": [row]}
