"""`sweeper.run(...)`: a study run from Python or a notebook, with the same driver, gate, store
and failure handling as `sweeper run`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # `import sweeper.cli` stays light: the definition's schema loads on use
    from sweeper.definition import LoadedDefinition


def _loaded(definition: Any) -> LoadedDefinition:
    """A definition given as a path, a dict (the YAML's sections) or a `Definition`."""
    import yaml

    from sweeper.definition import (
        Definition,
        LoadedDefinition,
        load_definition,
        parse_definition,
    )

    if isinstance(definition, (str, Path)):
        return load_definition(definition)
    if isinstance(definition, Definition):
        text = yaml.safe_dump(definition.model_dump(mode="json", exclude_unset=True))
        return LoadedDefinition(spec=parse_definition(text), text=text, path=None)
    if isinstance(definition, dict):
        text = yaml.safe_dump(definition, sort_keys=False)
        return LoadedDefinition(spec=parse_definition(text, "<dict>"), text=text, path=None)
    raise TypeError(
        "definition must be a path, a dict or a sweeper Definition, not "
        f"{type(definition).__name__}"
    )


def run(
    definition: Any,
    *,
    trials: int | None = None,
    storage: str | None = None,
    address: str | None = None,
    progress: bool = True,
    show_output: bool = False,
) -> Any:
    """Gate, then search, as `sweeper run` does, from Python or a notebook.

    `definition`: a path to a study definition, a dict of its sections, or a `Definition`.
    Overrides: `trials` (this many more finished trials from this call, as `--trials`),
    `storage` (the store URL), `address` (a Ray cluster). `progress`: the gate's table and a
    line per trial, printed as they come (rich renders them in Jupyter). `show_output`: the
    task's own output (its prints, its frameworks' banners) printed too; by default it goes to
    the study's `workers.log`, as with `sweeper run`.

    Returns the `optuna.Study`, with the gate's `Report` as `study.gate_report` (None when the
    gate is off) and the bias/variance verdict on the best as `study.diagnosis` (a
    `sweeper.diagnosis.Diagnosis`, None before a trial completes). A failed gate raises
    GateFailedError; the kernel's stop button (or Ctrl-C) ends the call with KeyboardInterrupt
    and leaves the study resumable: call it again.
    """
    from dataclasses import replace

    from sweeper.cli._common import console
    from sweeper.cli._display import ConsoleProgress
    from sweeper.orchestrator import run_study
    from sweeper.orchestrator._cluster import warnings_kept
    from sweeper.store import load_study

    loaded = _loaded(definition)
    if storage is not None:
        loaded = replace(loaded, spec=loaded.spec.model_copy(update={"storage": storage}))
    mode = "plain" if progress else "quiet"  # plain lines: a log, a notebook cell
    try:
        with ConsoleProgress(console(), mode) as shown, warnings_kept():
            outcome = run_study(
                loaded,
                progress=shown,
                address=address,
                trials=trials,
                show_output=show_output or None,
            )
    except KeyboardInterrupt:
        print(
            "interrupted: finished trials are kept and running ones are re-queued when the "
            "study next runs; call sweeper.run again to resume",
            file=sys.stderr,
        )
        raise
    study = load_study(loaded.spec.storage, loaded.spec.name)
    study.gate_report = outcome.gate  # type: ignore[attr-defined]
    study.diagnosis = outcome.diagnosis  # type: ignore[attr-defined]
    return study
