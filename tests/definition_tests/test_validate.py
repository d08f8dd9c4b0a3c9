from __future__ import annotations

from pathlib import Path

import pytest

from sweeper.definition import load_definition, parse_definition
from sweeper.errors import DefinitionError
from tests.conftest import ROOT, run_cli

SHIPPED = sorted((ROOT / "studies").glob("*.yaml"))

GOOD = """\
name: ok
task: sweeper.examples.digits:mlp_task
budget: {trials: 3, epochs: 2}
pruner: {type: none}
search:
  lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
  batch_size: {type: categorical, choices: [32, 64]}
  dropout: {type: float, low: 0.0, high: 0.5}
  init: {type: categorical, choices: [default, orthogonal]}
  hidden: {type: int, low: 16, high: 64}
  weight_decay: 0.0
"""


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_definitions_are_valid(path: Path) -> None:
    loaded = load_definition(path)
    assert loaded.spec.name
    assert {"lr", "batch_size", "dropout", "init"} <= set(loaded.spec.search.params())


def test_shipped_studies_exist() -> None:
    assert {p.name for p in SHIPPED} >= {"digits_mlp.yaml", "digits_cnn.yaml"}


def test_definition_scalar_is_fixed_param() -> None:
    spec = parse_definition(GOOD)
    assert spec.search.params()["weight_decay"].type == "fixed"
    assert spec.objective.direction == "maximize"
    assert spec.storage == "sqlite:///sweeps.db"


def test_definition_reports_every_error_with_path_and_line() -> None:
    bad = GOOD.replace("low: 1.0e-4", "low: -1").replace("trials: 3", "trials: 0")
    bad = bad.replace("choices: [default, orthogonal]", "choices: [default, he_normal]")
    bad += "typo_section: 1\n"
    with pytest.raises(DefinitionError) as err:
        parse_definition(bad, "bad.yaml")
    problems = err.value.problems
    assert len(problems) == 4, problems
    text = "\n".join(problems)
    assert "search.lr.low: must be > 0, got -1  (line 6)" in text
    assert "budget.trials" in text and "(line 3)" in text
    assert "search.init: unknown init scheme ['he_normal']" in text
    assert "typo_section: unknown key" in text


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("high: 0.5", "high: 1.5"), "search.dropout: must lie in [0, 1)"),
        (
            ("choices: [32, 64]", "choices: [0, 64]"),
            "search.batch_size: must be whole numbers >= 1",
        ),
        (("low: 16, high: 64", "low: 64, high: 16"), "search.hidden.high: must be >= low (64)"),
        (
            ("{type: int, low: 16", "{type: integer, low: 16"),
            "search.hidden: `type` must be one of",
        ),
        (("task: sweeper.examples.digits:mlp_task", "task: no_colon"), "task: must look like"),
        (
            ("pruner: {type: none}", "pruner: {type: median, warmup_epochs: 5}"),
            "pruner.warmup_epochs (5) must be < budget.epochs (2)",
        ),
    ],
)
def test_definition_rule_violations_are_named(change: tuple[str, str], expected: str) -> None:
    with pytest.raises(DefinitionError) as err:
        parse_definition(GOOD.replace(*change))
    assert expected in str(err.value)


def test_definition_missing_search_keys_are_required() -> None:
    text = GOOD.replace("  batch_size: {type: categorical, choices: [32, 64]}\n", "")
    assert text != GOOD
    with pytest.raises(DefinitionError, match=r"search.batch_size: required key is missing"):
        parse_definition(text)


def test_definition_without_dropout_gives_the_model_none() -> None:
    """A model without Dropout needs no dropout in the search space: its factory gets 0.0."""
    text = GOOD.replace("  dropout: {type: float, low: 0.0, high: 0.5}\n", "")
    assert text != GOOD
    assert parse_definition(text).search.params()["dropout"].value == 0.0


def test_definition_without_init_keeps_the_model_as_built() -> None:
    text = GOOD.replace("  init: {type: categorical, choices: [default, orthogonal]}\n", "")
    assert parse_definition(text).search.params()["init"].value == "none"


def test_definition_custom_metric_needs_a_direction() -> None:
    with pytest.raises(DefinitionError, match=r"metric 'macro_f1' is the task's own: say"):
        parse_definition(GOOD + "objective: {metric: macro_f1}\n")
    spec = parse_definition(GOOD + "objective: {metric: macro_f1, direction: maximize}\n")
    assert spec.objective.metric == "macro_f1"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "  precision: fp8\n",
            r"precision must be one of \['fp32', 'bf16', 'fp16'\], got \['fp8'\]",
        ),
        ("  grad_clip: 0\n", r"grad_clip must be a number > 0"),
        ("  grad_accumulation: {type: int, low: 0, high: 4}\n", r"grad_accumulation must be whole"),
        ("  schedule: {type: categorical, choices: [cosine, step]}\n", r"schedule must be one of"),
    ],
)
def test_definition_loop_params_are_checked(line: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        parse_definition(GOOD.replace("  weight_decay: 0.0\n", "  weight_decay: 0.0\n" + line))


def test_definition_yaml_syntax_error_names_line() -> None:
    with pytest.raises(
        DefinitionError, match=r"line \d+, column \d+: YAML syntax error: expected .,. or .}."
    ):
        parse_definition("name: a\ntask: b:c\nbudget: {trials: 1\n")


def test_definition_fingerprint_ignores_budget_but_not_space() -> None:
    a = load_definition_text(GOOD)
    more_trials = load_definition_text(GOOD.replace("trials: 3", "trials: 30"))
    other_space = load_definition_text(GOOD.replace("high: 64", "high: 128"))
    assert a == more_trials
    assert a != other_space


def load_definition_text(text: str) -> str:
    from sweeper.definition import fingerprint

    return fingerprint(parse_definition(text))


def test_cli_validate_ok_and_does_not_import_torch_or_ray(tmp_path: Path) -> None:
    probe = (
        "import sys; from sweeper.cli import main; rc = main(['validate', sys.argv[1]]);"
        "heavy = [m for m in ('torch', 'ray') if m in sys.modules];"
        "print('HEAVY', heavy); sys.exit(rc)"
    )
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", probe, str(ROOT / "studies/digits_mlp.yaml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "OK" in out.stdout
    assert "HEAVY []" in out.stdout


def test_cli_validate_errors_exit_2_with_all_problems(tmp_path: Path) -> None:
    bad = GOOD.replace("low: 1.0e-4", "low: -1").replace("trials: 3", "trials: 0")
    (tmp_path / "bad.yaml").write_text(bad)
    out = run_cli("validate", "bad.yaml", cwd=tmp_path)
    assert out.returncode == 2
    assert "2 problems" in out.stderr
    assert "search.lr.low: must be > 0, got -1" in out.stderr


def test_cli_validate_missing_task_module(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(GOOD.replace("sweeper.examples.digits", "no_such_module"))
    out = run_cli("validate", "d.yaml", cwd=tmp_path)
    assert out.returncode != 0
    assert "cannot find module 'no_such_module'" in out.stderr


def test_validate_gate_off_unquoted_is_read_as_off() -> None:
    from sweeper.definition import parse_definition

    base = "name: x\ntask: m:f\nbudget: {trials: 1, epochs: 5}\n"
    search = "search: {lr: 0.01, batch_size: 8, dropout: 0.0, init: default}\n"
    assert parse_definition(base + search + "probes: {gate: off}\n").probes.gate == "off"
    assert parse_definition(base + search + "probes: {gate: on}\n").probes.gate == "strict"


def test_definition_duplicate_keys_are_named_with_both_lines() -> None:
    text = GOOD.replace("pruner: {type: none}\n", "pruner: {type: none}\nbudget: {trials: 400}\n")
    with pytest.raises(DefinitionError) as err:
        parse_definition(text)
    assert "budget: the key appears twice (lines 3 and 5); keep one" in str(err.value)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("trials: 3", "trials: yes", r"budget.trials: Input should be a valid integer, got 'yes'"),
        ("trials: 3", "trials: true", r"budget.trials: Input should be a valid integer, got True"),
        ("name: ok", "name: 123", r"name: Input should be a valid string, got 123"),
        ("log: true}\n  batch", "log: on}\n  batch", r"search.lr.log: Input should be a valid"),
    ],
)
def test_definition_yaml_11_surprises_are_refused(old: str, new: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        parse_definition(GOOD.replace(old, new, 1))


def test_definition_numbers_read_as_written() -> None:
    text = GOOD.replace("low: 1.0e-4", "low: 1e-4").replace("trials: 3", "trials: 010")
    spec = parse_definition(text + "sampler: {seed: 0o17}\n")
    assert spec.search.lr.low == 1e-4  # YAML 1.1 reads 1e-4 as a string
    assert spec.budget.trials == 10  # not octal 8
    assert spec.sampler.seed == 15


def test_definition_probe_thresholds_are_set_and_checked() -> None:
    """Every probe threshold is settable under `probes:` and validated like the rest."""
    from sweeper.probes import Settings

    base = "name: x\ntask: m:f\nbudget: {trials: 1, epochs: 5}\n"
    search = "search: {lr: 0.01, batch_size: 8, dropout: 0.0, init: default}\n"
    spec = parse_definition(
        base + search + "probes: {target_scale_max: 100, gradient_ratio_max: 1e4}\n"
    )
    settings = Settings.from_spec(spec.probes)
    assert settings.target_scale_max == 100 and settings.gradient_ratio_max == 1e4
    with pytest.raises(DefinitionError, match="probes.overlap_fail"):
        parse_definition(base + search + "probes: {overlap_fail: 2}\n")
    with pytest.raises(DefinitionError, match="probes.gradient_ratio"):
        parse_definition(base + search + "probes: {gradient_ratio: 10}\n")


def test_readme_lists_every_probe_threshold_with_its_default() -> None:
    from sweeper.probes._settings import reference

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for name, default, meaning in reference():
        shown = "unset" if default is None else f"{default:g}"
        assert f"| `{name}` | {shown} | {meaning} |" in readme, name


def test_cli_output_into_a_closed_pipe_ends_quietly() -> None:
    """`sweeper ... | head`: the reader is gone before sweeper writes; the command ends with
    the shell's SIGPIPE status and no traceback."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)  # no reader at all: the first write fails
    try:
        done = subprocess.run(
            [sys.executable, "-m", "sweeper", "validate", str(ROOT / "studies/digits_mlp.yaml")],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
