"""The plots that explain a gate verdict, drawn from the gate report's recorded details."""

from __future__ import annotations

from typing import Any

from sweeper.report._svg import line_chart


def _finding(gate: dict[str, Any], probe: str) -> dict[str, Any] | None:
    return next((f for f in gate.get("findings", []) if f["probe"] == probe), None)


def gate_plots(gate: dict[str, Any]) -> dict[str, str]:
    """file name -> SVG text, for the plots the gate's details allow."""
    out: dict[str, str] = {}
    overfit = _finding(gate, "overfit_tiny") or {}
    curve = overfit.get("details", {}).get("curve")
    if curve:
        out["gate_overfit_tiny.svg"] = line_chart(
            {"train loss": list(enumerate(curve))},
            f"Tiny-set overfit ({overfit['verdict']}): loss on "
            f"{overfit['details'].get('samples', '?')} samples",
            "step",
            "loss",
        )
    lr = _finding(gate, "lr_range_test") or {}
    details = lr.get("details", {})
    if details.get("lrs"):
        measured = lr["measured"] if isinstance(lr["measured"], dict) else {}
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
    profiles = gate.get("init_profiles") or {}
    if any(profiles.values()):
        out["gate_activation_std.svg"] = line_chart(
            {scheme: list(enumerate(stds.values())) for scheme, stds in profiles.items()},
            "Output std of each layer at init, per init scheme",
            "layer (input → output)",
            "std of layer output",
        )
    return out
