"""Per-trial probes: cheap checks with the trial's own params that stop a broken trial early."""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from sweeper.probes._context import Context
from sweeper.probes._finding import Finding, Verdict
from sweeper.probes._init_loss import expected_init_loss, init_loss_value


class TrialMonitor:
    """Watches the first steps of a trial. `after_step` returns a reason to stop or None.

    Checks: loss and gradients finite; loss not growing to 2x where it started (smoothed,
    over three consecutive checks) during the watch window.
    """

    def __init__(self, window: int = 200, every: int = 5, growth: float = 2.0) -> None:
        self.window = window
        self.every = every
        self.growth = growth
        self.ema: float | None = None
        self.start: float | None = None
        self.above = 0
        self.findings: list[Finding] = []
        self.seconds = 0.0

    def after_step(self, step: int, loss: torch.Tensor, run: Any) -> str | None:
        if step >= self.window and step % 50:
            return None
        t = time.perf_counter()
        try:
            return self._check(step, loss, run)
        finally:
            self.seconds += time.perf_counter() - t

    def _check(self, step: int, loss: torch.Tensor, run: Any) -> str | None:
        value = float(loss.item())
        if not math.isfinite(value):
            return self._stop(
                "nonfinite_loss",
                value,
                "finite loss",
                f"loss became {value} at step {step}: lr too high for this init, or "
                "a log/division blow-up; lower lr or add gradient clipping",
            )
        if step % self.every == 0 or step < self.every:
            for name, p in run.model.named_parameters():
                if p.grad is not None and not bool(torch.isfinite(p.grad).all()):
                    return self._stop(
                        "nonfinite_grad",
                        name,
                        "finite gradients",
                        f"gradient of {name} is not finite at step {step}: "
                        "lower lr or clip gradients",
                    )
        if step >= self.window:
            return None
        self.ema = value if self.ema is None else 0.8 * self.ema + 0.2 * value
        if self.start is None:
            self.start = value
        if step % self.every == 0 and step >= 2 * self.every:
            if self.ema >= self.growth * max(self.start, 1e-8):
                self.above += 1
                if self.above >= 3:
                    return self._stop(
                        "loss_growth",
                        round(self.ema / self.start, 2),
                        f"< {self.growth}x the starting loss",
                        f"loss grew from {self.start:.3g} to {self.ema:.3g} in "
                        f"{step} steps: the lr ({run.params.get('lr'):.3g}) diverges",
                    )
            else:
                self.above = 0
        return None

    def _stop(self, probe: str, measured: Any, expected: str, hint: str) -> str:
        self.findings.append(Finding(probe, "fail", measured, expected, hint))
        return f"{probe}: {hint}"


def trial_start_checks(ctx: Context) -> list[Finding]:
    """Loss at init under the trial's own init scheme; a far-off value stops the trial."""
    _, y = ctx.data.train.head(512)
    expected, how = expected_init_loss(ctx, y)
    measured = init_loss_value(ctx)
    ratio = measured / max(expected, 1e-12)
    exp_txt = f"≈ {expected:.3f} ({how})"
    if not math.isfinite(measured) or measured < 0 and ctx.loss_name in ("cross_entropy", "nll"):
        return [
            Finding(
                "trial_init_loss",
                "fail",
                measured,
                exp_txt,
                f"init {ctx.params.get('init')!r} gives a broken loss at init",
            )
        ]
    if ratio > ctx.settings.init_loss_fail_ratio:
        return [
            Finding(
                "trial_init_loss",
                "fail",
                measured,
                exp_txt,
                f"init {ctx.params.get('init')!r} starts {ratio:.1f}x above the expected "
                "loss: outputs are over-confident under this scheme",
            )
        ]
    verdict: Verdict = "warn" if abs(ratio - 1) > ctx.settings.init_loss_tolerance else "pass"
    return [Finding("trial_init_loss", verdict, measured, exp_txt, "")]
