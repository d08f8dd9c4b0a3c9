"""Probe findings where users already look: optuna-dashboard's study note, artifacts, and
trial user attributes."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import optuna

from sweeper.probes import Finding, Report, fmt
from sweeper.report._gate_plots import gate_plots

# no emoji: fonts vary
ICON = {"pass": "pass", "skip": "skipped", "warn": "**warn**", "fail": "**FAIL**"}
_RANK = {"pass": 0, "skip": 0, "warn": 1, "fail": 2}


def _esc(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _cell(value: Any) -> str:
    return _esc(fmt(value))


def gate_note(gate: Report, plots: list[str] | None = None) -> str:
    """The gate report as a Markdown note: a table of probe, verdict, measured, expected, hint."""
    model = gate.table()
    lines = [
        f"## sweeper study gate: {model.verdict.upper()}",
        "",
        f"{len(model.rows)} probes on the reference config "
        f"`{_cell(model.reference_params)}` in {model.seconds:.1f}s.",
        "",
    ]
    for probe, hint in model.roots:
        lines.append(f"**Root cause: {probe}**: {_cell(hint)}")
    if model.roots:
        lines += ["", "The other failures follow from it; fix the root cause first.", ""]
    lines += [
        "| probe | verdict | measured | expected | hint |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in model.rows:
        lines.append(
            f"| {row.probe} | {ICON.get(row.verdict, row.verdict)} | {_esc(row.measured)} "
            f"| {_esc(row.expected)} | {_esc(row.hint)} |"
        )
    if plots:
        lines += ["", "Plots (in this study's Artifacts): " + ", ".join(f"`{p}`" for p in plots)]
    lines += [
        "",
        "Each trial's own probe results are in its user attributes `sweeper:verdict` and "
        "`sweeper:probes`.",
    ]
    return "\n".join(lines)


def publish_gate(study: optuna.Study, gate: Report, artifact_dir: Path) -> list[str]:
    """Save the gate note on the study and its plots as study artifacts (once per file name,
    so a resumed study does not pile up copies). Returns the plot file names."""
    from optuna.artifacts import FileSystemArtifactStore, get_all_artifact_meta, upload_artifact
    from optuna_dashboard import save_note

    plots = gate_plots(gate)
    artifact_dir.mkdir(parents=True, exist_ok=True)
    store = FileSystemArtifactStore(str(artifact_dir))
    have = {m.filename for m in get_all_artifact_meta(study)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, svg in plots.items():
            if name in have:
                continue
            path = Path(tmp) / name
            path.write_text(svg, encoding="utf-8")
            upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=study)
    save_note(study, gate_note(gate, list(plots)))
    return list(plots)


def results_note(gate: Report | None, lines: list[str]) -> str:
    """The study's note once the search has ended: the gate's table (when it ran), then the
    stages, the confirmation over seeds and the bias/variance verdict."""
    parts = [gate_note(gate, list(gate_plots(gate)))] if gate is not None else []
    body = ["## sweeper: after the search", ""]
    for line in lines:
        body.append(_esc(line) if line.startswith("- ") else "\n" + _esc(line) + "\n")
    parts.append("\n".join(body))
    return "\n\n".join(parts)


def publish_results(study: optuna.Study, gate: Report | None, lines: list[str]) -> None:
    """Write `results_note` as the study's note in optuna-dashboard."""
    from optuna_dashboard import save_note

    save_note(study, results_note(gate, lines))


def trial_summary(findings: list[Finding]) -> tuple[str, str]:
    """(worst verdict, one readable line) of a trial's probe findings, for its user attrs."""
    worst = "pass"
    parts = []
    for f in findings:
        if _RANK.get(f.verdict, 0) > _RANK[worst]:
            worst = f.verdict
        text = f"{f.probe}: {f.verdict}"
        if f.verdict != "pass" and f.hint:
            text += f" ({f.hint})"
        elif isinstance(f.measured, (int, float)):
            text += f" ({fmt(f.measured)})"
        parts.append(text)
    return worst, " · ".join(parts)
