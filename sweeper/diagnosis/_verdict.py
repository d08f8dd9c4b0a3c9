"""The bias/variance verdict from three numbers, as Ng's practical aspects read them: the
train split's value against the target (avoidable bias), validation against train (variance).
Both gaps are judged against the distance from the trivial baseline to the target, so one rule
serves accuracy, a loss, or a task's own metric."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VERDICTS = ("high_bias", "high_variance", "high_bias_and_variance", "good_fit")
TOLERANCE = 0.05  # a gap above this share of (target - baseline) is high
BOUNDED = ("accuracy", "acc", "f1", "auc", "auroc", "precision", "recall", "iou", "dice", "map")


@dataclass
class Diagnosis:
    """The verdict on the best configuration: its train and validation values, the target,
    the trivial baseline, the two gaps, and the next steps from the study's own evidence. A
    verdict of None says in `note` what is missing (a train metric, a target)."""

    metric: str
    verdict: str | None
    train: float | None
    val: float | None
    target: float | None
    next: list[str] = field(default_factory=list)
    trial: int | None = None
    train_metric: str | None = None
    baseline: float | None = None
    bias: float | None = None
    variance: float | None = None
    tolerance: float | None = None
    importance: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The `diagnosis` object of `sweeper status --json`."""
        return {
            "verdict": self.verdict,
            "train": self.train,
            "val": self.val,
            "target": self.target,
            "next": list(self.next),
            "metric": self.metric,
            "train_metric": self.train_metric,
            "trial": self.trial,
            "baseline": self.baseline,
            "bias": self.bias,
            "variance": self.variance,
            "tolerance": self.tolerance,
            "importance": dict(self.importance),
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Diagnosis:
        """The diagnosis as `to_dict` wrote it (kept with the study)."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})


def bounded(metric: str, maximize: bool) -> bool:
    """Whether the metric is a score in [0, 1] whose perfect value is 1 (accuracy, F1, AUC)."""
    words = metric.lower().replace("-", "_").replace("@", "_").split("_")
    return maximize and any(w in BOUNDED for w in words)


def worse_by(a: float, b: float, maximize: bool) -> float:
    """How much worse `a` is than `b` in the objective's direction (negative: better)."""
    return b - a if maximize else a - b


def judge(
    train: float, val: float, target: float, baseline: float | None, maximize: bool
) -> tuple[str, float, float, float]:
    """(verdict, bias, variance, tolerance): bias is train's distance short of the target,
    variance validation's short of train, high when above TOLERANCE of the way from the
    baseline (or zero) to the target."""
    bias = max(0.0, worse_by(train, target, maximize))
    variance = max(0.0, worse_by(val, train, maximize))
    scale = abs(target - baseline) if baseline is not None else abs(target)
    tolerance = TOLERANCE * (scale if scale > 0 else 1.0)
    high_bias, high_var = bias > tolerance, variance > tolerance
    if high_bias and high_var:
        verdict = "high_bias_and_variance"
    elif high_bias:
        verdict = "high_bias"
    elif high_var:
        verdict = "high_variance"
    else:
        verdict = "good_fit"
    return verdict, bias, variance, tolerance
