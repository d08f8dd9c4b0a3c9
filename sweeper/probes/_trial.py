"""Per-trial probes: cheap checks with the trial's own params that stop a broken trial early.

They reach a trial through hooks only (optimizer step hooks, forward hooks at sampled steps,
the metrics `trial.report` gets, the loss the loop hands to `trial.step` when it does), so the
same checks run in sweeper's own loop and in a user's `fit`. Each check's name is in
`TRIAL_CHECKS` and its thresholds are `probes:` settings.
"""

from __future__ import annotations

import itertools
import math
import time
from typing import Any

import torch

from sweeper.errors import TrialStopped
from sweeper.probes._activations import ActivationRecorder, judge_activations
from sweeper.probes._finding import Finding
from sweeper.probes._layer_watch import LayerFault, LayerWatch
from sweeper.probes._settings import TRIAL_CHECKS, Thresholds


def _floating_leaves(items: list[Any]) -> list[torch.Tensor]:
    """The floating tensors among a forward's arguments, one dict or sequence level deep."""
    out: list[torch.Tensor] = []
    for item in items:
        if isinstance(item, dict):
            inner = list(item.values())
        elif isinstance(item, (list, tuple)):
            inner = list(item)
        else:
            inner = [item]
        out += [t for t in inner if isinstance(t, torch.Tensor) and t.is_floating_point()]
    return out


class TrialMonitor:
    """Watches a whole trial through hooks, sampling steps (every `trial_every_early` within
    the first `trial_window` steps, then every `trial_every`); a failed check raises
    TrialStopped, a warning is recorded once per trial.

    At sampled optimizer steps: gradients finite, train mode, gradients zeroed, each module's
    output finite and not exploding (the first such layer named), units dying or saturating;
    the update/weight ratio per parameter group over the first steps and at every sampled
    step after; weights that never change. From the reported metrics: a loss not finite or far
    above the loss at init, an lr schedule at 0 before the last epoch, a loss oscillating, a
    metric still at chance. With `first_forward`, the activation statistics of the first
    forward pass (a user's own loop, where the trial-start checks could not build the model).
    """

    def __init__(
        self,
        settings: Thresholds | None = None,
        *,
        first_forward: bool = False,
        init: str = "none",
        expected_loss: float | None = None,
        chance: dict[str, float] | None = None,
        epochs: int | None = None,
        own_loop: bool = False,
    ) -> None:
        """`expected_loss`: the loss an untrained model gives (ln C), which reported losses
        are judged against when the loop hands no loss to `on_loss`; a user's own loop
        (`own_loop`) reports a loss sweeper did not compute, so it gets a 10x margin over
        it; `chance`: the trivial baseline's "accuracy" (majority-class share) and "loss"
        (the labels' prior loss); `epochs`: the trial's epochs, to tell a schedule that ends
        the lr early from one that ends on time."""
        self.s = settings or Thresholds()
        self.first_forward = first_forward
        self.init = init
        self.expected_loss = expected_loss
        self.chance = chance or {}
        self.own_loop = own_loop
        self.epochs = epochs
        self.reports = 0
        self.reported: list[float] = []  # the reported loss, epoch by epoch
        self.previous: dict[str, float] = {}  # the metrics reported the epoch before
        self.norms: list[torch.nn.Module] = []  # Dropout/BatchNorm: judged for eval mode
        self.probe_param: torch.Tensor | None = None  # the parameter that shows grad zeroing
        self.incoming: torch.Tensor | None = None
        self.incoming_hook: Any = None
        self.lagged = False  # the per-step nan check reads its sum a step later (accelerators)
        self.pending: torch.Tensor | None = None
        self.unzeroed = 0
        self.unchanged = 0  # sampled steps in a row that changed no weight
        self.ratios: list[list[float]] = []  # per step, per parameter group
        self.snapshot: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
        self.layers: LayerWatch | None = None
        self.last_input: tuple[Any, Any] | None = None
        self.ema: float | None = None
        self.start: float | None = None
        self.above = 0
        self.losses = 0  # losses seen
        self.steps = 0  # optimizer steps taken
        self.findings: list[Finding] = []
        self.warned: set[str] = set()
        self.seconds = 0.0
        self.model: torch.nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.handles: list[Any] = []
        self.stopped: str | None = None  # why a check stopped the trial

    def due(self, step: int) -> bool:
        """Whether optimizer step `step` is a sampled one."""
        early = step < self.s.trial_window and (
            step % self.s.trial_every_early == 0 or step < self.s.trial_every_early
        )
        return early or step % self.s.trial_every == 0

    def hooked(self, step: int) -> bool:
        """Whether the forward before optimizer step `step` runs with the layer hooks: every
        half `trial_every` steps within `trial_window`, then every `trial_every`."""
        every = self.s.trial_every
        return step % (max(1, every // 2) if step < self.s.trial_window else every) == 0

    # -- wiring ------------------------------------------------------------------------------
    def watch(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Attach to the model and optimizer the trial trains: optimizer step hooks, a hook on the
        inputs, the layer hooks for the first sampled forward (and the first-forward statistics
        in a `fit`); stops a stale optimizer at once."""
        self.close()
        self.model, self.optimizer = model, optimizer
        self._check_optimizer(model, optimizer)
        self.norms = [
            m
            for m in model.modules()
            if (isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.p > 0)
            or (
                isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                and any(p.requires_grad for p in m.parameters())
            )
        ]
        held = [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]
        sized = [p for p in held if p.numel() >= 16]
        self.probe_param = min(sized, key=lambda p: p.numel()) if sized else None
        self.incoming = None  # gathered only for the steps whose zeroing is checked
        self.lagged = self.probe_param is not None and self.probe_param.device.type != "cpu"
        self.pending = None
        # the last forward's inputs (references, not copies): replayed with the layer hooks
        # when a gradient turns non-finite, to name the layer where it started
        self.handles.append(model.register_forward_pre_hook(self._keep_input, with_kwargs=True))
        self.handles += [
            optimizer.register_step_pre_hook(lambda *_: self._timed(self._before_step)),
            optimizer.register_step_post_hook(lambda *_: self._timed(self._after_step)),
        ]
        s = self.s
        # a torch.compile'd model recompiles whenever hooks come and go: not hooked
        compiled = hasattr(model, "_orig_mod")
        self.layers = (
            None
            if compiled
            else LayerWatch(model, s.activation_growth, s.dead_relu_max, s.saturated_max)
        )
        if self.layers is not None and self.hooked(self.steps):
            self.layers.arm()
        if self.first_forward:
            recorder = ActivationRecorder(model)

            def once(*_: Any) -> None:
                recorder.remove()
                handle.remove()
                self._timed(lambda: self._judge_first_forward(model, recorder))

            handle = model.register_forward_hook(once)

    def _check_optimizer(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer must hold the watched model's parameters: a model rebuilt after
        its optimizer was made trains nothing."""
        held = {id(p) for g in optimizer.param_groups for p in g["params"]}
        trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        if trainable and not any(id(p) in held for p in model.parameters() if p.requires_grad):
            self._stop(
                "stale_optimizer",
                f"0 of {len(trainable)} trainable parameters",
                "the optimizer holds the model's parameters",
                "the optimizer holds none of the watched model's parameters: the model was "
                "rebuilt (or moved with a copy) after the optimizer was made; build the "
                "optimizer from the model you train, after .to(device)",
            )

    def _keep_input(self, _m: Any, args: Any, kwargs: Any) -> None:
        self.last_input = (args, kwargs)

    def _gather_incoming(self) -> None:
        """From now to the next optimizer step, sum the probe parameter's own gradients as
        backward produces them (a tensor hook), for `_check_zeroed`."""
        p = self.probe_param
        if p is None or self.incoming is not None:
            return
        self.incoming = torch.zeros_like(p)
        self.incoming_hook = p.register_hook(self._incoming_grad)

    def _incoming_grad(self, grad: torch.Tensor) -> None:
        """The probe parameter's gradients since its .grad was last set to None: a step the
        GradScaler skipped (inf at a too-high scale) followed by zero_grad() starts afresh."""
        if self.incoming is not None:
            if self.probe_param is not None and self.probe_param.grad is None:
                self.incoming.zero_()
            self.incoming.add_(grad.detach())

    def _drop_incoming(self) -> None:
        if self.incoming_hook is not None:
            self.incoming_hook.remove()
        self.incoming, self.incoming_hook = None, None

    def close(self) -> None:
        """Remove every hook and add the layer hooks' time to `seconds`."""
        for h in self.handles:
            h.remove()
        self.handles = []
        self._drop_incoming()
        if self.layers is not None:
            self.seconds += self.layers.seconds
            self.layers.seconds = 0.0
            self.layers.disarm()

    def _timed(self, check: Any) -> None:
        t = time.perf_counter()
        try:
            check()
        finally:
            self.seconds += time.perf_counter() - t

    # -- the reported metrics ------------------------------------------------------------------
    def on_report(self, metrics: dict[str, float]) -> None:
        """An epoch's reported metrics: a loss that is not finite, or far above what an
        untrained model gives, means the trial diverged (seen without `trial.step`); an lr
        of 0 in every group before the last epoch means the schedule ended it early; a loss
        going up and down in turn oscillates; a metric at the trivial baseline's level after
        the first epochs means the trial trains but learns nothing."""
        self.reports += 1
        self._timed(lambda: self._check_report(metrics))

    def _check_report(self, metrics: dict[str, float]) -> None:
        name = next((k for k in ("train_loss", "loss", "val_loss") if k in metrics), None)
        if name is not None:
            self._check_reported_loss(name, float(metrics[name]))
        if self.optimizer is not None and self.epochs and self.reports < self.epochs - 1:
            lrs = [float(g["lr"]) for g in self.optimizer.param_groups]
            if self.steps > 0 and lrs and all(lr == 0 for lr in lrs):
                self._stop(
                    "lr_schedule",
                    0.0,
                    "lr > 0 until the last epoch",
                    f"the lr is 0 in every parameter group after epoch {self.reports} of "
                    f"{self.epochs}: the schedule ends too early (T_max / total steps "
                    "smaller than the training), so the rest of the trial trains nothing",
                )
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

    # -- the loss the loop hands over ----------------------------------------------------------
    def on_loss(self, loss: torch.Tensor) -> None:
        """A step's loss from `trial.step`, read at sampled steps: not finite, or growing past
        `loss_growth` x its start, stops the trial."""
        step = self.steps
        self.losses += 1
        if self.due(step):  # a sampled step: reading a loss is a host sync
            self._timed(lambda: self._check_loss(step, loss))

    def _check_loss(self, step: int, loss: torch.Tensor) -> None:
        value = float(loss.item())
        if not math.isfinite(value):
            self._replay(step)
            self._stop(
                "nonfinite_loss",
                value,
                "finite loss",
                f"loss became {value} at step {step}: lr too high for this init, or "
                "a log/division blow-up; lower lr or add gradient clipping",
            )
        if step >= self.s.trial_window:
            return
        self.ema = value if self.ema is None else 0.8 * self.ema + 0.2 * value
        if self.start is None:
            self.start = value
        every = self.s.trial_every_early
        if step % every == 0 and step >= 2 * every:
            if self.ema >= self.s.loss_growth * max(self.start, 1e-8):
                self.above += 1
                if self.above >= 3:
                    self._stop(
                        "loss_growth",
                        round(self.ema / self.start, 2),
                        f"< {self.s.loss_growth}x the starting loss",
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

    # -- optimizer steps -----------------------------------------------------------------------
    def _snapshot(self) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
        """The weight matrices of each parameter group, with a copy of their values."""
        assert self.optimizer is not None
        return [
            [(p, p.detach().clone()) for p in g["params"] if p.requires_grad and p.ndim >= 2]
            for g in self.optimizer.param_groups
        ]

    def _before_step(self) -> None:
        step = self.steps
        if self.layers is not None and self.layers.armed:
            self._judge_layers(step, self.layers.judge())
        if self._nonfinite_now():
            self._replay(step)  # every step: a nan caught before it reaches the weights
            self._check_grads(step)
        if self.due(step):
            self._check_grads(step)
            self._check_train_mode(step)
            self._check_zeroed(step)
        self._drop_incoming()
        if 1 <= step <= self.s.update_ratio_steps or (step > 0 and step % self.s.trial_every == 0):
            self.snapshot = self._snapshot()

    def _nonfinite_now(self) -> bool:
        """Whether the probe parameter's gradient is not finite, at every step. On the CPU
        it is read at once; on an accelerator it is read one step later (`lagged`), so the
        check never stalls the device's queue: the nan has then reached the weights, and
        the layer named is the first whose weights broke."""
        grad = self.probe_param.grad if self.probe_param is not None else None
        if grad is None:
            return False
        if not self.lagged:
            return not math.isfinite(float(grad.sum()))
        previous, self.pending = self.pending, grad.sum()
        return previous is not None and not math.isfinite(float(previous))

    def _replay(self, step: int) -> None:
        """The step's loss or gradient is not finite while the weights still are: run the
        step's forward again with the layer hooks, to name the first layer whose output turns
        non-finite (stops the trial if one does)."""
        if self.model is not None and self.layers is not None and self.last_input is not None:
            args, kwargs = self.last_input
            self._check_inputs(step)
            self.layers.arm()
            try:
                with torch.no_grad():
                    self.model(*args, **kwargs)
            except Exception:  # noqa: BLE001 - a model that cannot replay: the caller names it
                pass
            self._judge_layers(step, self.layers.judge())

    def _check_inputs(self, step: int) -> None:
        """The last forward's inputs hold nan/inf: the data, not a layer, made it."""
        if self.last_input is None:
            return
        args, kwargs = self.last_input
        inputs = _floating_leaves([*args, *kwargs.values()])
        if inputs and not math.isfinite(float(sum(t.float().sum() for t in inputs))):
            self._stop(
                "nonfinite_input",
                "nan/inf in the batch",
                "finite inputs",
                f"the inputs of step {step} hold nan/inf: a corrupt sample in the data "
                "(the gate's data_finite reads a sample of the rows) or an augmentation "
                "that makes one (a division by a zero std); clean or drop such rows",
            )

    def _judge_layers(self, step: int, faults: list[LayerFault]) -> None:
        for f in faults:
            if f.probe == "nonfinite_activation":
                self._check_inputs(step)
                after = f" ({f.before} before it is finite)" if f.before else ""
                module = dict(self.model.named_modules()).get(f.layer) if self.model else None
                broken = module is not None and not all(
                    bool(p.isfinite().all()) for p in module.parameters(recurse=False)
                )
                why = (
                    f"its weights are already non-finite (a step before {step} applied a "
                    "non-finite update); lower lr or clip gradients"
                    if broken
                    else f"look at what {f.layer} computes (a log, a division, an exp, an "
                    "overflow in low precision) or lower lr / clip gradients"
                )
                self._stop(
                    f.probe,
                    {f.layer: f.measured},
                    "finite outputs in every layer",
                    f"{f.layer}: output becomes {f.measured} at step {step}, the first layer "
                    f"to turn non-finite{after}; {why}",
                )
            if f.probe == "activation_explosion":
                self._stop(
                    f.probe,
                    {f.layer: f.measured},
                    f"each layer's output RMS < {self.s.activation_growth:g}x its start",
                    f"{f.layer}: activations reach {f.measured:.3g} at step {step} (RMS "
                    f"{f.first:.3g} at the start), the first layer to explode; lower lr, clip "
                    "gradients, or normalise what feeds it",
                )
            if f.probe == "dead_units":
                self._warn(
                    "dying_units",
                    {f.layer: round(f.measured, 3)},
                    f"≤ {self.s.dead_relu_max:.0%} of ReLU units dead during training",
                    f"{f.layer}: {f.measured:.0%} of its units output 0 for a whole batch at "
                    f"step {step} ({f.first:.0%} at the start): large updates pushed them off; "
                    "lower lr, or use LeakyReLU/GELU or normalisation before it",
                )
            if f.probe == "saturated_units":
                self._warn(
                    "saturating_units",
                    {f.layer: round(f.measured, 3)},
                    f"≤ {self.s.saturated_max:.0%} of tanh/sigmoid units saturated",
                    f"{f.layer}: {f.measured:.0%} of its units are saturated for a whole batch "
                    f"at step {step} ({f.first:.0%} at the start): their gradient vanishes; "
                    "lower lr or normalise the layer before it",
                )

    def _check_grads(self, step: int) -> None:
        assert self.optimizer is not None
        grads = [
            (p, p.grad)
            for g in self.optimizer.param_groups
            for p in g["params"]
            if p.grad is not None and not p.grad.is_sparse
        ]
        if not grads:
            return
        # one fused norm and one host sync for all gradients, not one per tensor
        if math.isfinite(float(torch.stack(torch._foreach_norm([gr for _, gr in grads])).sum())):
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

    def _check_train_mode(self, step: int) -> None:
        """Dropout and BatchNorm in eval mode at an optimizer step: model.train() forgotten
        after an evaluation (a BatchNorm frozen on purpose has no trainable parameters)."""
        if self.norms and not any(m.training for m in self.norms):
            kinds = sorted({type(m).__name__ for m in self.norms})
            self._stop(
                "eval_mode_training",
                f"{len(self.norms)} {'/'.join(kinds)} modules in eval mode",
                "train mode at optimizer steps",
                f"optimizer step {step} runs with the model in eval mode ({', '.join(kinds)} "
                "behave as at inference: no dropout, frozen statistics): call model.train() "
                "at the start of each epoch, after any evaluation",
            )

    def _check_zeroed(self, step: int) -> None:
        """The gradient the step applies must be this step's own: a .grad that still holds
        the earlier steps' gradients (zero_grad() forgotten) points elsewhere. Clipping and
        loss scaling rescale it, so only its direction is compared; gradient accumulation
        (zeroing every k micro-batches) sums this step's micro-batches and passes."""
        p, new = self.probe_param, self.incoming
        if p is None or new is None or p.grad is None or step == 0:
            return
        g = p.grad.detach().flatten().float()
        n = new.flatten().float()
        dot, g_norm, n_norm = torch.stack([torch.dot(g, n), g.norm(), n.norm()]).tolist()
        if n_norm == 0 or g_norm == 0:
            return
        cos = dot / (g_norm * n_norm)
        self.unzeroed = self.unzeroed + 1 if cos < self.s.grad_zeroed_cosine else 0
        if self.unzeroed >= 2:
            names = {id(q): n for n, q in self.model.named_parameters()} if self.model else {}
            self._stop(
                "grad_not_zeroed",
                round(cos, 3),
                f"each step's gradient is its own (cosine with it ≥ {self.s.grad_zeroed_cosine})",
                f"the gradient of {names.get(id(p), 'a parameter')} at step {step} still holds "
                "earlier steps' gradients: zero_grad() is never called, so every step "
                "applies the sum of all gradients so far; call optimizer.zero_grad() each step",
            )

    def _after_step(self) -> None:
        self.steps += 1
        if self.due(self.steps) and self.steps > 0:
            self._gather_incoming()
        if self.snapshot:
            self._judge_update(self._update_ratios())
        if self.steps == self.s.update_ratio_steps + 1 and self.ratios:
            self._judge_ratio(self.ratios[: self.s.update_ratio_steps])
        if self.layers is not None and self.hooked(self.steps):
            self.layers.arm()  # records the forward before that step

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
            grads = [w.grad for pairs in self._snapshot() for w, _ in pairs]
            if any(g is not None for g in grads):
                why = (
                    "the gradients are all zero: no signal reaches the weights (units that "
                    "died, see dying_units, or an output detached from them); lower lr or "
                    "check the forward"
                )
            else:
                why = (
                    "the gradients are gone when step() runs: call loss.backward() before "
                    "optimizer.step() and zero_grad() after it (or before backward), not "
                    "between them"
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
        layers of |ΔW| / |W|. Any group too high diverges; too low only if every group is
        (a fine-tuned backbone with a tiny lr beside a head that learns is fine)."""
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
            self._stop(
                "update_ratio",
                high,
                expected,
                f"each step changes the weights of parameter group {hi_group} by {high:.2g} of "
                f"their size: lr={self._lr(hi_group):.3g} is too high for this setup",
            )
        if 0 < high < lo:
            self._stop(
                "update_ratio",
                high,
                expected,
                f"each step changes the weights by only {high:.2g} of their "
                f"size: lr={self._lr(hi_group):.3g} is too low to learn within the budget",
            )
        self.findings.append(Finding("update_ratio", "pass", high, expected))

    def _judge_first_forward(self, model: torch.nn.Module, rec: ActivationRecorder) -> None:
        found = judge_activations(
            model, rec, self.init, dead_max=self.s.dead_relu_max, max_gain=self.s.max_layer_gain
        )
        self.findings.extend(found)
        failed = [f for f in found if f.verdict == "fail"]
        if failed:
            self.stopped = f"{failed[0].probe}: {failed[0].hint}"
            raise TrialStopped(self.stopped)

    # -- verdicts ------------------------------------------------------------------------------
    def _stop(self, probe: str, measured: Any, expected: str, hint: str) -> None:
        assert probe in TRIAL_CHECKS, probe
        self.findings.append(Finding(probe, "fail", measured, expected, hint))
        self.stopped = f"{probe}: {hint}"
        raise TrialStopped(self.stopped)

    def _warn(self, probe: str, measured: Any, expected: str, hint: str) -> None:
        """A warning, once per trial (the study shows it once, unless it gets worse)."""
        assert probe in TRIAL_CHECKS, probe
        if probe not in self.warned:
            self.warned.add(probe)
            self.findings.append(Finding(probe, "warn", measured, expected, hint))
