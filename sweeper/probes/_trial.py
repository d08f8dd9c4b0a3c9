"""Per-trial probes: cheap checks with the trial's own params that stop a broken trial early.

They reach a trial through hooks only (forward hooks, optimizer step hooks, the loss the loop
hands to `trial.step`), so the same checks run in sweeper's own loop and in a user's `fit`.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from sweeper.errors import TrialStopped
from sweeper.probes._context import LAYERS, Context
from sweeper.probes._finding import Finding, Verdict, fmt
from sweeper.probes._init_loss import expected_init_loss, init_loss_value
from sweeper.training import build_model, forward


class TrialMonitor:
    """Watches the first steps of a trial through hooks; a failed check raises TrialStopped.

    Checks: gradients finite (optimizer pre-step hook), the update/weight ratio over the first
    `ratio_steps` steps in `ratio_range` (pre/post-step hooks), and, from the losses the loop
    hands to `on_loss`, loss finite and not growing to `growth` x where it started (smoothed,
    three consecutive checks) within the first `window` steps. With `first_forward`, also the
    activation statistics of the first forward pass (for a user's own loop).
    """

    def __init__(
        self,
        window: int = 200,
        every: int = 5,
        growth: float = 2.0,
        ratio_steps: int = 20,
        ratio_range: tuple[float, float] = (1e-4, 1e-1),
        first_forward: bool = False,
        init: str = "none",
        dead_max: float = 0.5,
    ) -> None:
        self.window = window
        self.every = every
        self.growth = growth
        self.ratio_steps = ratio_steps
        self.ratio_range = ratio_range
        self.first_forward = first_forward
        self.init = init
        self.dead_max = dead_max
        self.ratios: list[list[float]] = []  # per step, per parameter group
        self.snapshot: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
        self.ema: float | None = None
        self.start: float | None = None
        self.above = 0
        self.losses = 0  # losses seen
        self.steps = 0  # optimizer steps taken
        self.findings: list[Finding] = []
        self.seconds = 0.0
        self.model: torch.nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.handles: list[Any] = []
        self.stopped: str | None = None  # why a check stopped the trial

    # -- wiring ------------------------------------------------------------------------------
    def watch(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.close()
        self.model, self.optimizer = model, optimizer
        self.handles = [
            optimizer.register_step_pre_hook(lambda *_: self._timed(self._before_step)),
            optimizer.register_step_post_hook(lambda *_: self._timed(self._after_step)),
        ]
        if self.first_forward:
            recorder = ActivationRecorder(model)

            def once(*_: Any) -> None:
                recorder.remove()
                handle.remove()
                self._timed(lambda: self._judge_first_forward(model, recorder))

            handle = model.register_forward_hook(once)

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def _timed(self, check: Any) -> None:
        t = time.perf_counter()
        try:
            check()
        finally:
            self.seconds += time.perf_counter() - t

    # -- checks ------------------------------------------------------------------------------
    def on_loss(self, loss: torch.Tensor) -> None:
        step = self.steps
        self.losses += 1
        if step >= self.window and step % 50:
            return
        self._timed(lambda: self._check_loss(step, loss))

    def _check_loss(self, step: int, loss: torch.Tensor) -> None:
        value = float(loss.item())
        if not math.isfinite(value):
            self._stop(
                "nonfinite_loss",
                value,
                "finite loss",
                f"loss became {value} at step {step}: lr too high for this init, or "
                "a log/division blow-up; lower lr or add gradient clipping",
            )
        if step >= self.window:
            return
        self.ema = value if self.ema is None else 0.8 * self.ema + 0.2 * value
        if self.start is None:
            self.start = value
        if step % self.every == 0 and step >= 2 * self.every:
            if self.ema >= self.growth * max(self.start, 1e-8):
                self.above += 1
                if self.above >= 3:
                    self._stop(
                        "loss_growth",
                        round(self.ema / self.start, 2),
                        f"< {self.growth}x the starting loss",
                        f"loss grew from {self.start:.3g} to {self.ema:.3g} in "
                        f"{step} steps: the lr ({self._lr():.3g}) diverges",
                    )
            else:
                self.above = 0

    def _lr(self, group: int = 0) -> float:
        """The peak lr of a parameter group (schedulers keep it as `initial_lr`)."""
        assert self.optimizer is not None
        g = self.optimizer.param_groups[group]
        return float(g.get("initial_lr", g["lr"]))

    def _snapshot(self) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
        """The weight matrices of each parameter group, with a copy of their values."""
        assert self.optimizer is not None
        return [
            [(p, p.detach().clone()) for p in g["params"] if p.requires_grad and p.ndim >= 2]
            for g in self.optimizer.param_groups
        ]

    def _before_step(self) -> None:
        step = self.steps
        due = step < self.window and (step % self.every == 0 or step < self.every)
        if due or step % 50 == 0:
            self._check_grads(step)
        if 1 <= step <= self.ratio_steps:
            self.snapshot = self._snapshot()

    def _check_grads(self, step: int) -> None:
        assert self.optimizer is not None
        grads = [
            (p, p.grad)
            for g in self.optimizer.param_groups
            for p in g["params"]
            if p.grad is not None
        ]
        if not grads:
            return
        # one reduction and one host sync for all gradients, not one per tensor
        if bool(torch.stack([gr.isfinite().all() for _, gr in grads]).all()):
            return
        names = {id(p): n for n, p in self.model.named_parameters()} if self.model else {}
        bad = next(
            names.get(id(p), "a parameter") for p, gr in grads if not bool(gr.isfinite().all())
        )
        self._stop(
            "nonfinite_grad",
            bad,
            "finite gradients",
            f"gradient of {bad} is not finite at step {step}: lower lr or clip gradients",
        )

    def _after_step(self) -> None:
        self.steps += 1
        if self.snapshot:
            assert self.optimizer is not None
            per_group = []
            for group, pairs in zip(self.optimizer.param_groups, self.snapshot, strict=True):
                per_layer = sorted(
                    float((w.detach() - old).norm() / old.norm().clamp_min(1e-12))
                    for w, old in pairs
                )
                lr = float(group["lr"])
                # under a warmup the step is a fraction of the full one: judge the full one
                scale = float(group.get("initial_lr", lr)) / lr if lr > 0 else 1.0
                per_group.append(per_layer[len(per_layer) // 2] * scale if per_layer else -1.0)
            self.ratios.append(per_group)
            self.snapshot = []
        if self.steps == self.ratio_steps + 1 and self.ratios:
            self._judge_ratio()

    def _judge_ratio(self) -> None:
        """For each parameter group, the median over the first steps of the median over its
        layers of |ΔW| / |W|. Any group too high diverges; too low only if every group is
        (a fine-tuned backbone with a tiny lr beside a head that learns is fine)."""
        groups = range(len(self.ratios[0]))
        medians = []
        for i in groups:
            values = sorted(r[i] for r in self.ratios if r[i] >= 0)
            medians.append(values[len(values) // 2] if values else -1.0)
        judged = [(m, i) for i, m in enumerate(medians) if m >= 0]
        if not judged:
            return
        lo, hi = self.ratio_range
        expected = f"in [{lo:g}, {hi:g}]"
        high, hi_group = max(judged)
        if high > hi:
            self._stop(
                "update_ratio",
                high,
                expected,
                f"each step changes the weights by {high:.2g} of their size: "
                f"lr={self._lr(hi_group):.3g} is too high for this setup",
            )
        if high < lo:
            self._stop(
                "update_ratio",
                high,
                expected,
                f"each step changes the weights by only {high:.2g} of their "
                f"size: lr={self._lr(hi_group):.3g} is too low to learn within the budget",
            )
        self.findings.append(Finding("update_ratio", "pass", high, expected))

    def _judge_first_forward(self, model: torch.nn.Module, rec: ActivationRecorder) -> None:
        found = judge_activations(model, rec, self.init, dead_max=self.dead_max)
        self.findings.extend(found)
        failed = [f for f in found if f.verdict == "fail"]
        if failed:
            self.stopped = f"{failed[0].probe}: {failed[0].hint}"
            raise TrialStopped(self.stopped)

    def _stop(self, probe: str, measured: Any, expected: str, hint: str) -> None:
        self.findings.append(Finding(probe, "fail", measured, expected, hint))
        self.stopped = f"{probe}: {hint}"
        raise TrialStopped(self.stopped)


class ActivationRecorder:
    """Forward hooks that record, on the next forward pass, each Linear/Conv layer's output
    std and the share of each ReLU's units that are zero for every sample (dead)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.stds: dict[str, float] = {}
        # output std / input RMS: what the layer's weights multiply; an input's mean counts too
        # (a sigmoid's outputs are mostly mean), as a layer sees it as signal
        self.gains: dict[str, float] = {}
        self.dead: dict[str, float] = {}
        self.hooks = []
        for name, m in model.named_modules():
            if isinstance(m, LAYERS):
                self.hooks.append(m.register_forward_hook(self._std_hook(name)))
            elif isinstance(m, torch.nn.ReLU):
                self.hooks.append(m.register_forward_hook(self._dead_hook(name)))

    def _std_hook(self, name: str) -> Any:
        def hook(_m: Any, inputs: Any, out: torch.Tensor) -> None:
            if name not in self.stds:
                self.stds[name] = float(out.detach().float().std())
                if inputs and isinstance(inputs[0], torch.Tensor):
                    in_rms = float(inputs[0].detach().float().pow(2).mean().sqrt())
                    self.gains[name] = self.stds[name] / max(in_rms, 1e-12)

        return hook

    def _dead_hook(self, name: str) -> Any:
        def hook(_m: Any, _i: Any, out: torch.Tensor) -> None:
            if name not in self.dead and out.ndim >= 2:
                units = out.detach().reshape(out.shape[0], out.shape[1], -1).amax(dim=(0, 2))
                self.dead[name] = float((units <= 0).float().mean())

        return hook

    def remove(self) -> None:
        for h in self.hooks:
            h.remove()
        self.hooks = []


def _constant_layers(layers: list[tuple[str, Any]]) -> list[str]:
    """Hidden layers whose weights are all equal: a constant other than zero, or zero while
    every layer is zero (one zero layer, as in a zero-initialised residual branch, is fine)."""
    const = [
        (n, float(m.weight.detach().flatten()[0]))
        for n, m in layers[:-1]
        if m.weight.numel() > 1 and bool((m.weight == m.weight.flatten()[0]).all())
    ]
    all_zero = all(float(m.weight.detach().abs().max()) == 0.0 for _, m in layers)
    return [n for n, c in const if c != 0.0 or all_zero]


def init_label(init: str) -> str:
    return "the model's own init (init: none)" if init == "none" else f"init {init!r}"


def judge_activations(
    model: torch.nn.Module,
    rec: ActivationRecorder,
    init: str,
    probe_prefix: str = "trial_",
    dead_max: float = 0.5,
) -> list[Finding]:
    """Findings on what a recorder saw: constant (symmetric) hidden weights and dead ReLU units
    fail; layer output stds outside [0.5, 2.0] warn."""
    label = init_label(init)
    layers: list[tuple[str, Any]] = [
        (n, m) for n, m in model.named_modules() if isinstance(m, LAYERS)
    ]
    symmetric = _constant_layers(layers)
    out: list[Finding] = []
    if symmetric:
        out.append(
            Finding(
                f"{probe_prefix}symmetric_weights",
                "fail",
                symmetric,
                "weights with variance",
                f"hidden layers {fmt(symmetric[:3])} have constant weights under {label}: every "
                "unit computes the same thing",
            )
        )
    worst_dead = max(rec.dead.items(), key=lambda kv: kv[1], default=("", 0.0))
    if worst_dead[1] > dead_max:
        out.append(
            Finding(
                f"{probe_prefix}dead_units",
                "fail",
                {worst_dead[0]: round(worst_dead[1], 3)},
                f"≤ {dead_max:.0%} of ReLU units dead at init",
                f"{worst_dead[1]:.0%} of units after {worst_dead[0]} never fire under "
                f"{label}: a large negative bias or a broken scale",
            )
        )
    hidden = {n: s for n, s in list(rec.stds.items())[:-1]}
    off = {n: round(s, 3) for n, s in hidden.items() if not 0.5 <= s <= 2.0}
    out.append(
        Finding(
            f"{probe_prefix}activation_std",
            "warn" if off else "pass",
            off or {n: round(s, 3) for n, s in hidden.items()},
            "std in [0.5, 2.0]",
            f"layer outputs shrink or grow under {label}: {off}" if off else "",
            details={"std": {n: round(s, 4) for n, s in rec.stds.items()}},
        )
    )
    return out


@torch.no_grad()
def record_activations(
    ctx: Context, params: dict[str, Any], rows: int = 256
) -> tuple[torch.nn.Module, ActivationRecorder]:
    """A fresh model for `params` (seeded), in eval mode, after one forward pass on the first
    training rows, with what the recorder saw."""
    torch.manual_seed(ctx.seed)
    model = build_model(ctx.task, params, ctx.device)
    model.eval()
    rec = ActivationRecorder(model)
    try:
        forward(model, ctx.data.train.head(rows)[0])
    finally:
        rec.remove()
    return model, rec


def activation_stats(ctx: Context, rows: int = 256) -> list[Finding]:
    """Under the trial's init: output std of each Linear/Conv layer, weights with zero variance,
    and the share of ReLU units that are zero for every sample (dead)."""
    model, rec = record_activations(ctx, ctx.params, rows)
    init = str(ctx.params.get("init", "none"))
    return judge_activations(model, rec, init, dead_max=ctx.settings.dead_relu_max)


def trial_start_checks(ctx: Context) -> list[Finding]:
    """Loss at init and activation statistics under the trial's own init scheme; a failure
    stops the trial before it trains."""
    acts = activation_stats(ctx)
    if any(f.verdict == "fail" for f in acts):
        return acts
    return acts + _trial_init_loss(ctx)


def _trial_init_loss(ctx: Context) -> list[Finding]:
    _, y = ctx.data.train.head(512)
    got = expected_init_loss(ctx, y)
    if got is None:
        return []
    expected, how = got
    measured = init_loss_value(ctx)
    ratio = measured / max(expected, 1e-12)
    exp_txt = f"≈ {expected:.3f} ({how})"
    label = init_label(str(ctx.params.get("init", "none")))
    if not math.isfinite(measured) or measured < 0 and ctx.loss_name in ("cross_entropy", "nll"):
        return [
            Finding("trial_init_loss", "fail", measured, exp_txt, f"{label} gives a broken loss")
        ]
    if ratio > ctx.settings.init_loss_fail_ratio:
        return [
            Finding(
                "trial_init_loss",
                "fail",
                measured,
                exp_txt,
                f"{label} starts {ratio:.1f}x above the expected loss: outputs are "
                "over-confident under this scheme",
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
