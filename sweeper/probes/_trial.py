"""Per-trial probes: cheap checks with the trial's own params that stop a broken trial early."""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from sweeper.probes._context import Context
from sweeper.probes._finding import Finding, Verdict
from sweeper.probes._init_loss import expected_init_loss, init_loss_value
from sweeper.training import build_model


class TrialMonitor:
    """Watches the first steps of a trial. `after_step` returns a reason to stop or None.

    Checks: loss and gradients finite; loss not growing to 2x where it started (smoothed,
    over three consecutive checks) during the watch window.
    """

    def __init__(
        self,
        window: int = 200,
        every: int = 5,
        growth: float = 2.0,
        ratio_steps: int = 20,
        ratio_range: tuple[float, float] = (1e-4, 1e-1),
    ) -> None:
        self.window = window
        self.ratio_steps = ratio_steps
        self.ratio_range = ratio_range
        self.ratios: list[float] = []
        self.snapshot: list[tuple[torch.Tensor, torch.Tensor]] = []
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
        if 1 <= step <= self.ratio_steps + 1:
            reason = self._update_ratio(step, run)
            if reason is not None:
                return reason
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

    def _update_ratio(self, step: int, run: Any) -> str | None:
        """Median over the first steps of the median over layers of |ΔW| / |W|."""
        if self.snapshot:
            per_layer = [
                float((w.detach() - old).norm() / old.norm().clamp_min(1e-12))
                for w, old in self.snapshot
            ]
            per_layer.sort()
            self.ratios.append(per_layer[len(per_layer) // 2])
        if step <= self.ratio_steps:
            self.snapshot = [
                (p, p.detach().clone())
                for p in run.model.parameters()
                if p.requires_grad and p.ndim >= 2
            ]
            return None
        self.snapshot = []
        if not self.ratios:
            return None
        ratios = sorted(self.ratios)
        median = ratios[len(ratios) // 2]
        lo, hi = self.ratio_range
        lr = run.params.get("lr")
        if median > hi:
            return self._stop(
                "update_ratio",
                median,
                f"in [{lo:g}, {hi:g}]",
                f"each step changes the weights by {median:.2g} of their size: "
                f"lr={lr:.3g} is too high for this setup",
            )
        if median < lo:
            return self._stop(
                "update_ratio",
                median,
                f"in [{lo:g}, {hi:g}]",
                f"each step changes the weights by only {median:.2g} of their "
                f"size: lr={lr:.3g} is too low to learn within the budget",
            )
        self.findings.append(Finding("update_ratio", "pass", median, f"in [{lo:g}, {hi:g}]"))
        return None

    def _stop(self, probe: str, measured: Any, expected: str, hint: str) -> str:
        self.findings.append(Finding(probe, "fail", measured, expected, hint))
        return f"{probe}: {hint}"


_LAYERS = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)


@torch.no_grad()
def activation_stats(ctx: Context, rows: int = 256) -> list[Finding]:
    """Under the trial's init: output std of each Linear/Conv layer, weights with zero variance,
    and the share of ReLU units that are zero for every sample (dead)."""
    torch.manual_seed(ctx.seed)
    model = build_model(ctx.task, ctx.params, ctx.device)
    model.eval()
    stds: dict[str, float] = {}
    dead: dict[str, float] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, _LAYERS):
            hooks.append(
                m.register_forward_hook(
                    lambda _m, _i, out, n=name: stds.__setitem__(n, float(out.float().std()))
                )
            )
        elif isinstance(m, torch.nn.ReLU):

            def _dead(_m: Any, _i: Any, out: torch.Tensor, n: str = name) -> None:
                units = out.reshape(out.shape[0], out.shape[1], -1).amax(dim=(0, 2))
                dead[n] = float((units <= 0).float().mean())

            hooks.append(m.register_forward_hook(_dead))
    try:
        model(ctx.data.train.head(rows)[0])
    finally:
        for h in hooks:
            h.remove()
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, _LAYERS)]
    symmetric = [n for n, m in layers[:-1] if float(m.weight.std()) == 0.0]
    out: list[Finding] = []
    init = ctx.params.get("init")
    if symmetric:
        out.append(
            Finding(
                "trial_symmetric_weights",
                "fail",
                symmetric,
                "weights with variance",
                f"hidden layers {symmetric[:3]} have constant weights under init "
                f"{init!r}: every unit computes the same thing",
            )
        )
    worst_dead = max(dead.items(), key=lambda kv: kv[1], default=("", 0.0))
    if worst_dead[1] > 0.5:
        out.append(
            Finding(
                "trial_dead_units",
                "fail",
                {worst_dead[0]: round(worst_dead[1], 3)},
                "≤ 50% of ReLU units dead at init",
                f"{worst_dead[1]:.0%} of units after {worst_dead[0]} never fire under "
                f"init {init!r}: a large negative bias or a broken scale",
            )
        )
    hidden = {n: s for n, s in list(stds.items())[:-1]}
    off = {n: round(s, 3) for n, s in hidden.items() if not 0.5 <= s <= 2.0}
    out.append(
        Finding(
            "trial_activation_std",
            "warn" if off else "pass",
            off or {n: round(s, 3) for n, s in hidden.items()},
            "std in [0.5, 2.0]",
            f"layer outputs shrink or grow under init {init!r}: {off}" if off else "",
            details={"std": {n: round(s, 4) for n, s in stds.items()}},
        )
    )
    return out


def trial_start_checks(ctx: Context) -> list[Finding]:
    """Loss at init and activation statistics under the trial's own init scheme; a failure
    stops the trial before it trains."""
    acts = activation_stats(ctx)
    if any(f.verdict == "fail" for f in acts):
        return acts
    return acts + _trial_init_loss(ctx)


def _trial_init_loss(ctx: Context) -> list[Finding]:
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


def init_profiles(ctx: Context, schemes: list[str]) -> dict[str, dict[str, float]]:
    """Output std of every Linear/Conv layer at init, for each init scheme (a plot in the
    dashboard and the report shows which schemes keep the signal's scale through the net)."""
    out: dict[str, dict[str, float]] = {}
    for scheme in schemes:
        sub = Context(ctx.task, ctx.data, {**ctx.params, "init": scheme}, ctx.device, ctx.settings)
        found = [f for f in activation_stats(sub) if f.probe == "trial_activation_std"]
        out[scheme] = found[0].details.get("std", {}) if found else {}
    return out
