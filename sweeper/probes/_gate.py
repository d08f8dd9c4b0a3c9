"""The study gate: every probe once on a reference configuration, before any search trial."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

import torch

from sweeper._watchdog import is_user_file
from sweeper.probes._baselines import label_noise, short_fit_vs_baseline, zero_input_baseline
from sweeper.probes._context import REFERENCE_PARAMS, Context, Settings
from sweeper.probes._data_checks import (
    class_balance,
    constant_features,
    data_finite,
    data_order,
    data_scale,
    labels_in_range,
    train_val_overlap,
)
from sweeper.probes._finding import Finding, Report
from sweeper.probes._init_loss import init_loss
from sweeper.probes._leakage import duplicate_samples, label_leakage
from sweeper.probes._logged import logged_names
from sweeper.probes._lr_range import lr_range_test
from sweeper.probes._model_checks import (
    batch_independence,
    eval_determinism,
    gradcheck,
    gradient_depth,
    gradient_flow,
)
from sweeper.probes._outputs import (
    degenerate_output,
    loss_shapes,
    output_activation_vs_loss,
    output_range,
    target_scale,
)
from sweeper.probes._overfit import overfit_tiny
from sweeper.probes._sequence import causal_mask, padding_mask
from sweeper.probes._settings import GATE_PROBES
from sweeper.probes._weight_init import weight_init
from sweeper.training import Data, NoLossError

Probe = Callable[[Context], Finding]

_FUNCTIONS: dict[str, Probe] = {
    "data_finite": data_finite,
    "labels_in_range": labels_in_range,
    "data_scale": data_scale,
    "constant_features": constant_features,
    "class_balance": class_balance,
    "duplicate_samples": duplicate_samples,
    "train_val_overlap": train_val_overlap,
    "label_leakage": label_leakage,
    "data_order": data_order,
    "loss_shapes": loss_shapes,
    "weight_init": weight_init,
    "gradient_depth": gradient_depth,
    "degenerate_output": degenerate_output,
    "output_activation_vs_loss": output_activation_vs_loss,
    "output_range": output_range,
    "target_scale": target_scale,
    "gradient_flow": gradient_flow,
    "eval_determinism": eval_determinism,
    "batch_independence": batch_independence,
    "causal_mask": causal_mask,
    "padding_mask": padding_mask,
    "gradcheck": gradcheck,
    "init_loss": init_loss,
    "overfit_tiny": overfit_tiny,
    "zero_input_baseline": zero_input_baseline,
    "short_fit_vs_baseline": short_fit_vs_baseline,
    "label_noise": label_noise,
    "lr_range_test": lr_range_test,
}
# In GATE_PROBES' order (causes before consequences; see attribute()).
GATE: list[tuple[str, Probe]] = [(name, _FUNCTIONS[name]) for name in GATE_PROBES]
PROBE_NAMES = tuple(name for name, _ in GATE)
_DATA_PROBES = {"data_finite", "labels_in_range"}
_NEEDS_CLEAN_DATA = set(PROBE_NAMES) - _DATA_PROBES - {"data_scale", "constant_features"}
_DATA_ONLY = set(PROBE_NAMES[: PROBE_NAMES.index("loss_shapes")])  # the data probes come first
# What a failure can explain: a probe of one stage explains failures of the stages listed.
_STAGE = {name: "setup" for name in PROBE_NAMES[PROBE_NAMES.index("loss_shapes") :]}
_STAGE.update(
    {n: "poison" for n in ("data_finite", "labels_in_range")}
    | {n: "inputs" for n in ("data_scale", "constant_features")}
    | {n: "split" for n in ("class_balance", "train_val_overlap", "data_order")}
    | {"duplicate_samples": "loader", "label_leakage": "split"}
    | {n: "outcome" for n in ("init_loss", "overfit_tiny", "zero_input_baseline")}
    | {n: "outcome" for n in ("short_fit_vs_baseline", "label_noise", "lr_range_test")}
)
_EXPLAINS = {
    "poison": {"poison", "inputs", "loader", "split", "setup", "outcome"},
    "inputs": {"loader", "setup", "outcome"},  # blank inputs make every row alike
    "loader": {"split", "setup", "outcome"},  # a loader repeating rows starves the rest
    "split": {"outcome"},
    "setup": {"setup", "outcome"},
    "outcome": {"outcome"},
}


def _cannot_run(name: str, task: Any) -> str | None:
    """Why a probe cannot run on this task (one that trains itself with `fit` may give sweeper
    no data or no model), or None."""
    if task.train is None or task.val is None:
        return "skipped: the task gives no train/val data (it trains itself with fit)"
    if name not in _DATA_ONLY and task.build_model is None:
        return "skipped: the task gives no build_model (it trains itself with fit)"
    return None


def run_gate(
    task: Any,
    params: dict[str, Any] | None = None,
    settings: Settings | None = None,
    device: torch.device | None = None,
    data: Data | None = None,
    progress: Callable[[Finding], None] | None = None,
    starting: Callable[[str], None] | None = None,
) -> Report:
    """Run every enabled gate probe; a probe that crashes becomes a failure naming the error."""
    t0 = time.perf_counter()
    dev = device or torch.device("cpu")
    p = {**REFERENCE_PARAMS, **(params or {})}
    has_data = task.train is not None and task.val is not None
    ctx = Context(
        task=task,
        data=data or (Data.of(task, dev) if has_data else None),  # type: ignore[arg-type]
        params=p,
        device=dev,
        settings=settings or Settings(),
    )
    report = Report()
    for name, probe in GATE:
        if name in ctx.settings.disabled:
            continue
        why_not = _cannot_run(name, task)
        if why_not is not None:
            finding = Finding(name, "skip", None, "—", why_not)
        elif name in _NEEDS_CLEAN_DATA and any(
            f.verdict == "fail" and f.probe in _DATA_PROBES for f in report.findings
        ):
            finding = Finding(
                name, "skip", "not run", "clean data", "skipped: fix the data findings above first"
            )
        else:
            if starting is not None:
                starting(name)
            finding = _run_one(name, probe, ctx)
        report.findings.append(finding)
        if progress is not None:
            progress(finding)
    if task.build_model is not None and ctx.data is not None and not report.failures:
        try:
            report.logged = logged_names(ctx)
        except Exception:  # noqa: BLE001 - a module that cannot run its steps alone: unknown
            report.logged = None
    report.seconds = time.perf_counter() - t0
    attribute(report)
    return report


def attribute(report: Report) -> None:
    """Mark each failure that an earlier failure explains with that failure's root cause: a
    shape bug makes overfit_tiny fail too, and the user should read "shapes" first."""
    roots: list[Finding] = []
    # an error that names its own cause (the model's loss missing) is a root cause, whatever
    # failed before it; the first such is the root, the same error in later probes follows it
    own = [f for f in report.failures if f.details.get("own_cause")]
    for f in own[1:]:
        f.cause = own[0].probe
    raised = [f for f in report.failures if "raised" in f.details and f not in own]
    for f in report.failures:
        if "raised" in f.details or f in own:
            continue
        stage = _STAGE.get(f.probe, "outcome")
        root = next((r for r in roots if stage in _EXPLAINS[_STAGE.get(r.probe, "outcome")]), None)
        if root is None:
            roots.append(f)
        else:
            f.cause = root.probe
    # A probe that crashed in the model or the loss says where, not why: a probe that found
    # why (a shape or range the loss cannot take) is the root; else the first crash is.
    first = roots[0] if roots else (raised[0] if raised else None)
    for f in raised:
        if f is not first and first is not None:
            f.cause = first.probe


def _run_one(name: str, probe: Probe, ctx: Context) -> Finding:
    t = time.perf_counter()
    try:
        finding = probe(ctx)
    except Exception as e:  # a crash in the user's model is itself a finding
        frames = traceback.extract_tb(e.__traceback__)
        # the user's innermost frame, not torch's or sweeper's
        mine = [f for f in frames if is_user_file(f.filename)]
        at = mine[-1] if mine else None
        where = f" at {at.filename}:{at.lineno} in {at.name}" if at is not None else ""
        finding = Finding(
            name,
            "fail",
            f"{type(e).__name__}: {e}",
            "the probe runs",
            f"the model or loss raised{where}; fix that error first",
            details={"raised": type(e).__name__}
            | ({"own_cause": True} if isinstance(e, NoLossError) else {}),
        )
    finding.seconds = round(time.perf_counter() - t, 4)
    return finding


def probe(
    task: Any,
    params: dict[str, Any] | None = None,
    settings: Settings | None = None,
    device: str | torch.device | None = None,
) -> Report:
    """Run the study gate on a sweeper.Task without running a study.

    >>> report = sweeper.probe(task)
    >>> report.verdict
    >>> [(f.probe, f.verdict, f.measured, f.expected, f.hint) for f in report.findings]
    """
    dev = torch.device(device) if device is not None else None
    return run_gate(task, params=params, settings=settings, device=dev)
