"""What a trainer logged, as the numbers `trial.report` takes."""

from __future__ import annotations

from typing import Any


def numeric_metrics(metrics: dict[str, Any], names: list[str] | None) -> dict[str, float]:
    """The scalar numbers among `metrics` (tensors of one element included), or exactly
    `names` of them: a name that was not logged is an error that lists what was."""
    found: dict[str, float] = {}
    for key, value in metrics.items():
        if hasattr(value, "numel"):
            if value.numel() != 1:
                continue
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            found[str(key)] = float(value)
    if names is None:
        return found
    missing = [n for n in names if n not in found]
    if missing:
        raise KeyError(
            f"metrics {missing} were not logged this epoch (logged: {sorted(found) or 'none'}): "
            "log them (Lightning: self.log in validation_step; Hugging Face: compute_metrics), "
            "or drop them from metrics="
        )
    return {n: found[n] for n in names}
