"""The trial monitor's checks on the metrics a trial reports each epoch: a loss not finite or
far above the loss at init, an lr schedule at 0 before the last epoch, a training loss that
oscillates, a trial that stays at chance."""

from __future__ import annotations

import itertools
import math

from sweeper.probes._trial_base import MonitorBase


class MetricChecks(MonitorBase):
    """`on_report` and the checks it runs (mixed into TrialMonitor)."""

    expected_loss: float | None
    own_loop: bool
    chance: dict[str, float]
    reports: int
    reported: list[float]
    previous: dict[str, float]

    def on_report(self, metrics: dict[str, float]) -> None:
        """An epoch's reported metrics: a loss that is not finite, or far above what an
        untrained model gives, means the trial diverged (seen without `trial.step`); an lr
        of 0 in every group before the last epoch means the schedule ended it early; a training
        loss that rises from epoch to epoch oscillates; a metric at the trivial baseline's
        level after the first epochs means the trial trains but learns nothing."""
        self.reports += 1
        self._timed(lambda: self._check_report(metrics))

    def _check_report(self, metrics: dict[str, float]) -> None:
        name = next((k for k in ("train_loss", "loss", "val_loss") if k in metrics), None)
        if name is not None:
            self._check_reported_loss(name, float(metrics[name]))
        if self.optimizer is not None and self.epochs and self.reports < self.epochs - 1:
            if self.steps > 0:
                self._schedule_ended(f"after epoch {self.reports} of {self.epochs}")
        self._check_chance(metrics)

    def _check_reported_loss(self, name: str, value: float) -> None:
        ref = self.start if self.start is not None else self.expected_loss
        factor = self.s.loss_growth * (2 if name == "val_loss" else 1)  # val loss may overfit
        if self.start is None and self.own_loop:
            factor = max(factor, 10.0)  # a loss the user computed: its scale is theirs
        if not math.isfinite(value):
            self._stop(
                "nonfinite_loss",
                value,
                "finite loss",
                f"the reported {name} is {value} at epoch {self.reports}: the "
                "trial diverged; lower lr or clip gradients",
            )
        if ref is not None and ref > 0 and value > factor * ref:
            self._stop(
                "loss_growth",
                round(value / ref, 2),
                f"{name} < {factor:g}x the loss at init ({ref:.3g})",
                f"the reported {name} is {value:.3g} at epoch {self.reports}, "
                f"{value / ref:.1f}x what an untrained model gives ({ref:.3g}): the lr "
                f"({self._lr():.3g}) diverges",
            )
        self.reported.append(value)
        self._check_oscillation(name)

    def _check_oscillation(self, name: str) -> None:
        """The training loss, epoch by epoch, should fall (under a constant or decaying lr): a
        rise of more than `loss_oscillation` of its value in two epochs of the trial means
        the noise of small batches (or a too-high lr) drowns the descent. Validation losses
        are not judged (they rise when the model overfits)."""
        if name == "val_loss" or len(self.reported) < 3:
            return
        rises = [(b - a) / a for a, b in itertools.pairwise(self.reported) if a > 0]
        big = [r for r in rises if r > self.s.loss_oscillation]
        if len(big) >= 2:
            self._warn(
                "loss_oscillation",
                round(max(big), 3),
                f"{name} falls epoch by epoch (rises ≤ {self.s.loss_oscillation:.0%})",
                f"the {name} went {' → '.join(f'{v:.3g}' for v in self.reported)} over "
                f"{self.reports} epochs, rising by up to {max(big):.0%}: the loss oscillates; "
                "the batch size is too small for this lr (raise batch_size or lower lr)",
            )

    def _check_chance(self, metrics: dict[str, float]) -> None:
        """After `chance_after` of the epochs (at least 2), the reported accuracy and loss
        both still at the trivial baseline's and neither better than the epoch before by
        `chance_margin`: the trial trains but learns nothing. Either
        alone is not enough: a language model's accuracy sits at the most frequent token's
        share while its loss falls, and an overconfident model's loss can pass the prior's
        while its accuracy is high."""
        previous, self.previous = self.previous, dict(metrics)
        after = max(2, math.ceil(self.s.chance_after * self.epochs)) if self.epochs else 2
        last = self.epochs is not None and self.reports >= self.epochs
        if self.reports < after or last or not self.chance:
            return  # at the last epoch the result itself says it: nothing left to save
        margin = self.s.chance_margin
        accs = sorted(
            (not k.startswith("val"), k)
            for k, v in metrics.items()
            if "acc" in k.lower() and 0 <= v <= 1
        )
        said: list[tuple[str, float, float]] = []  # (name, value, the baseline's)
        if accs and "accuracy" in self.chance:
            name = accs[0][1]
            said.append((name, float(metrics[name]), self.chance["accuracy"]))
            if said[-1][1] > said[-1][2] + margin:
                return
        if "val_loss" in metrics and "loss" in self.chance:
            said.append(("val_loss", float(metrics["val_loss"]), self.chance["loss"]))
            if said[-1][1] < (1 - margin) * said[-1][2]:
                return
        if not said:
            return
        learning = [  # still moving away from the baseline: a slow start, not a stuck trial
            n
            for n, v, _ in said
            if n in previous
            and (v > previous[n] + margin if "acc" in n else v < (1 - margin) * previous[n])
        ]
        if learning:
            return
        name, value, base = said[0]
        expected = " or ".join(
            f"{n} {'>' if 'acc' in n else '<'} the baseline's {b:.3g}" for n, _, b in said
        )
        levels = ", ".join(f"{n} {v:.3g} (baseline {b:.3g})" for n, v, b in said)
        earlier = sorted(self.warned & {"dying_units", "saturating_units"})
        seen = f" ({' and '.join(earlier)} warned earlier in this trial)" if earlier else ""
        hint = (
            f"{levels} after {self.reports} epochs: the trial is at the trivial baseline's "
            "level, it trains but learns nothing; look for model.eval() left "
            f"on during training, labels that do not match their inputs, or an lr too low{seen}"
        )
        self._stop("at_chance", round(value, 4), expected, hint)
