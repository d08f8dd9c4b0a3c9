"""The trial monitor's update checks: how much each optimizer step changes the weights,
per parameter group — a spike at any sampled step, a median over the first steps that is too
high or too low for the lr, and sampled steps that change no weight at all."""

from __future__ import annotations

import torch

from sweeper.probes._finding import Finding
from sweeper.probes._trial_base import MonitorBase


class UpdateChecks(MonitorBase):
    """|ΔW| / |W| per parameter group at sampled steps (`snapshot` holds the weights before)."""

    optimizer: torch.optim.Optimizer | None
    snapshot: list[list[tuple[torch.Tensor, torch.Tensor]]]
    ratios: list[list[float]]
    unchanged: int
    steps: int

    def _update_ratios(self) -> list[float]:
        """Per parameter group, the median over its weight matrices of |ΔW| / |W| in the step
        just taken (-1 for a group without matrices), as the full step under a warmup."""
        assert self.optimizer is not None
        per_group = []
        for group, pairs in zip(self.optimizer.param_groups, self.snapshot, strict=True):
            per_layer = sorted(
                float((w.detach() - old).norm() / old.norm().clamp_min(1e-12)) for w, old in pairs
            )
            lr = float(group["lr"])
            # under a warmup the step is a fraction of the full one: judge the full one
            scale = float(group.get("initial_lr", lr)) / lr if lr > 0 else 1.0
            per_group.append(per_layer[len(per_layer) // 2] * scale if per_layer else -1.0)
        self.snapshot = []
        self.ratios.append(per_group)
        return per_group

    def _judge_update(self, per_group: list[float]) -> None:
        """Any sampled step: one group's weights changed by more than `update_ratio_spike` of
        their size, or no weight changed at all at three sampled steps in a row."""
        assert self.optimizer is not None
        worst = max(((r, i) for i, r in enumerate(per_group)), default=(-1.0, 0))
        if worst[0] > self.s.update_ratio_spike:
            self._stop(
                "update_ratio",
                worst[0],
                f"≤ {self.s.update_ratio_spike:g} of the weights' size per step",
                f"step {self.steps} changed the weights of parameter group {worst[1]} by "
                f"{worst[0]:.3g}x their size: lr={self._lr(worst[1]):.3g} is far too high "
                "(later steps may look calm once units saturate)",
            )
        lrs = [float(g["lr"]) for g in self.optimizer.param_groups]
        judged = [r for r in per_group if r >= 0]
        still = bool(judged) and all(r == 0 for r in judged) and any(lr > 0 for lr in lrs)
        self.unchanged = self.unchanged + 1 if still else 0
        if self.unchanged >= 3:
            self._schedule_ended(f"at step {self.steps}, where the weights stopped changing")
            assert self.optimizer is not None
            held = [p for g in self.optimizer.param_groups for p in g["params"] if p.ndim >= 2]
            grads = [p.grad for p in held if p.grad is not None]
            if any(bool(g.abs().sum() > 0) for g in grads):
                why = (
                    "the gradients reach the weights but the step does not apply them: an lr "
                    "too small to change the weights at their precision, a GradScaler that "
                    "skips every step (inf/nan gradients), or an optimizer stepping copies "
                    "of the parameters"
                )
            elif grads:
                why = (
                    "the gradients are all zero: no signal reaches the weights (units that "
                    "died, see dying_units, or an output detached from them); lower lr or "
                    "check the forward"
                )
            else:
                why = "the gradients are gone when step() runs: " + self._fix(
                    "weights_unchanged",
                    "call loss.backward() before optimizer.step() and zero_grad() after it "
                    "(or before backward), not between them",
                )
            self._stop(
                "weights_unchanged",
                0.0,
                "optimizer steps change the weights",
                f"optimizer step {self.steps} changed no weight (nor did the sampled steps "
                f"before it) although the lr is above 0: {why}",
            )

    def _judge_ratio(self, ratios: list[list[float]]) -> None:
        """For each parameter group, the median over the first steps of the median over its
        layers of |ΔW| / |W|. Outside the band it warns: clean pipelines train at 0.13 (a
        4-weight regression at SGD lr 0.1, pytorch/examples' LSTM at lr 20 clipped) and at
        2e-6 (an SGD lr 1e-3 mixed-precision recipe), and a real divergence is stopped by the
        spike, the loss or the layers. A hundredth of the band's floor in every group (an lr
        of 1e-8, gradients clipped to nothing) trains nothing and stops the trial; too low
        counts only if every group is (a fine-tuned backbone with a tiny lr beside a head
        that learns is fine)."""
        groups = range(len(ratios[0]))
        medians = []
        for i in groups:
            values = sorted(r[i] for r in ratios if r[i] >= 0)
            medians.append(values[len(values) // 2] if values else -1.0)
        judged = [(m, i) for i, m in enumerate(medians) if m >= 0]
        if not judged:
            return
        lo, hi = self.s.update_ratio_min, self.s.update_ratio_max
        expected = f"in [{lo:g}, {hi:g}]"
        high, hi_group = max(judged)
        if high > hi:
            self._warn(
                "update_ratio",
                high,
                expected,
                f"each step changes the weights of parameter group {hi_group} by {high:.2g} of "
                f"their size: lr={self._lr(hi_group):.3g} is on the high side for this setup "
                "(the trial runs on: a divergence is stopped by the loss or the layers)",
            )
            return
        if 0 < high < lo / 100:
            self._stop(
                "update_ratio",
                high,
                expected,
                f"each step changes the weights by only {high:.2g} of their size: "
                f"lr={self._lr(hi_group):.3g} (after any clipping) trains nothing within "
                "the budget",
            )
        if 0 < high < lo:
            self._warn(
                "update_ratio",
                high,
                expected,
                f"each step changes the weights by only {high:.2g} of their "
                f"size: lr={self._lr(hi_group):.3g} learns slowly (the trial runs on)",
            )
            return
        self.findings.append(Finding("update_ratio", "pass", high, expected))
