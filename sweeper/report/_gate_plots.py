"""The plots that explain a gate verdict, drawn from the gate report's recorded details."""

from __future__ import annotations

from sweeper.probes import Report
from sweeper.report._svg import line_chart


def gate_plots(gate: Report) -> dict[str, str]:
    """file name -> SVG text, for the plots the gate's details allow."""
    out: dict[str, str] = {}
    overfit = gate["overfit_tiny"] if "overfit_tiny" in gate else None
    curve = overfit.details.get("curve") if overfit is not None else None
    if overfit is not None and curve:
        out["gate_overfit_tiny.svg"] = line_chart(
            {"train loss": list(enumerate(curve))},
            f"Tiny-set overfit ({overfit.verdict}): loss on "
            f"{overfit.details.get('samples', '?')} samples",
            "step",
            "loss",
        )
    lr = gate["lr_range_test"] if "lr_range_test" in gate else None
    details = lr.details if lr is not None else {}
    if lr is not None and details.get("lrs"):
        measured = lr.measured if isinstance(lr.measured, dict) else {}
        marks = {}
        if measured.get("divergence_lr"):
            marks["diverges"] = float(measured["divergence_lr"])
        if details.get("cap"):
            marks["search cap"] = float(details["cap"])
        out["gate_lr_range_test.svg"] = line_chart(
            {"smoothed loss": list(zip(details["lrs"], details["losses"], strict=False))},
            f"Learning-rate range test ({details.get('optimizer', '')})",
            "learning rate",
            "loss",
            logx=True,
            marks=marks,
        )
    profiles = gate.init_profiles
    if any(profiles.values()):
        out["gate_activation_std.svg"] = line_chart(
            {scheme: list(enumerate(stds.values())) for scheme, stds in profiles.items()},
            "Output std of each layer at init, per init scheme",
            "layer (input → output)",
            "std of layer output",
        )
    return out
