"""Mutated study definitions for fuzzing the door: dropped and duplicated keys, swapped types,
random unicode, truncation, numbers flipped to extremes (Hypothesis strategies)."""

from __future__ import annotations

import re

from hypothesis import strategies as st

VALID = """\
name: fuzz
task: sweeper.examples.digits:mlp_task
storage: sqlite:///sweeps.db
objective: {metric: val_accuracy, direction: maximize}
budget:
  trials: 3
  epochs: 2
  max_consecutive_failures: 5
search:
  lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
  batch_size: {type: categorical, choices: [32, 64]}
  dropout: {type: float, low: 0.0, high: 0.5}
  init: {type: categorical, choices: [none, default, orthogonal]}
  hidden: {type: int, low: 16, high: 64}
  weight_decay: 0.0
sampler: {type: tpe, seed: 0, startup_trials: 2}
pruner: {type: median, warmup_epochs: 1, startup_trials: 1}
probes: {gate: strict, trial: true}
resources: {cpus: 1, gpus: 0}
"""

EXTREMES = [
    "0",
    "-1",
    "1e308",
    "-1e308",
    "9223372036854775808",
    ".inf",
    "-.inf",
    ".nan",
    "1e-3",
    "0o17",
    "010",
    "1:30",
    "yes",
    "no",
    "on",
    "off",
    "true",
    "false",
    "null",
    "~",
    "''",
    "[]",
    "{}",
    "[1, 2]",
    "{a: 1}",
    "'3'",
    '"x"',
    "-0.0",
    "3.5",
    "1_000",
]
_SCALAR = re.compile(r"(:\s*|\[|,\s*)([^\s,\[\]{}:]+)")


def _drop(text: str, i: int) -> str:
    lines = text.splitlines(keepends=True)
    del lines[i % len(lines)]
    return "".join(lines)


def _duplicate(text: str, i: int) -> str:
    lines = text.splitlines(keepends=True)
    k = i % len(lines)
    return "".join(lines[: k + 1] + [lines[k]] + lines[k + 1 :])


def _swap_scalar(text: str, i: int, value: str) -> str:
    spots = list(_SCALAR.finditer(text))
    m = spots[i % len(spots)]
    return text[: m.start(2)] + value + text[m.end(2) :]


def _insert(text: str, i: int, junk: str) -> str:
    k = i % (len(text) + 1)
    return text[:k] + junk + text[k:]


def _truncate(text: str, i: int) -> str:
    return text[: i % (len(text) + 1)]


index = st.integers(min_value=0, max_value=10_000)
junk = st.text(min_size=1, max_size=12)  # any unicode: controls, surrogates-free, emoji, NUL
mutation = st.one_of(
    st.tuples(st.just("drop"), index),
    st.tuples(st.just("duplicate"), index),
    st.tuples(st.just("swap"), index, st.sampled_from(EXTREMES) | junk),
    st.tuples(st.just("insert"), index, junk),
    st.tuples(st.just("truncate"), index),
)


def apply(text: str, ops: list[tuple]) -> str:
    for op in ops:
        kind = op[0]
        if kind == "drop":
            text = _drop(text, op[1]) if text.strip() else text
        elif kind == "duplicate":
            text = _duplicate(text, op[1]) if text.strip() else text
        elif kind == "swap":
            text = _swap_scalar(text, op[1], op[2]) if _SCALAR.search(text) else text
        elif kind == "insert":
            text = _insert(text, op[1], op[2])
        else:
            text = _truncate(text, op[1])
    return text


definitions = st.lists(mutation, min_size=1, max_size=3).map(lambda ops: apply(VALID, ops))
