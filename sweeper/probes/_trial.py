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
from sweeper.training import build_model, forward, loss_name


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
        expected_loss: float | None = None,
        max_gain: float = 4.0,
        epochs: int | None = None,
        own_loop: bool = False,
    ) -> None:
        """`expected_loss`: the loss an untrained model gives (ln C), which reported losses
        are judged against when the loop hands no loss to `on_loss`; a user's own loop
        (`own_loop`) reports a loss sweeper did not compute, so it gets a 10x margin over
        it; `epochs`: the trial's epochs, to tell a schedule that ends the lr early from one
        that ends on time."""
        self.window = window
        self.every = every
        self.growth = growth
        self.ratio_steps = ratio_steps
        self.ratio_range = ratio_range
        self.first_forward = first_forward
        self.init = init
        self.dead_max = dead_max
        self.expected_loss = expected_loss
        self.own_loop = own_loop
        self.max_gain = max_gain
        self.epochs = epochs
        self.reports = 0
        self.norms: list[torch.nn.Module] = []  # Dropout/BatchNorm: judged for eval mode
        self.probe_param: torch.Tensor | None = None  # the parameter that shows grad zeroing
        self.incoming: torch.Tensor | None = None
        self.unzeroed = 0
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
        if self.probe_param is not None:
            self.incoming = torch.zeros_like(self.probe_param)
            self.handles.append(self.probe_param.register_hook(self._incoming_grad))
        self.handles += [
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

    def _incoming_grad(self, grad: torch.Tensor) -> None:
        if self.incoming is not None:
            self.incoming.add_(grad.detach())

    def on_report(self, metrics: dict[str, float]) -> None:
        """An epoch's reported metrics: a loss that is not finite, or far above what an
        untrained model gives, means the trial diverged (seen without `trial.step`); an lr
        of 0 in every group before the last epoch means the schedule ended it early."""
        self.reports += 1
        self._timed(lambda: self._check_report(metrics))

    def _check_report(self, metrics: dict[str, float]) -> None:
        name = next((k for k in ("train_loss", "loss", "val_loss") if k in metrics), None)
        if name is not None:
            value = metrics[name]
            ref = self.start if self.start is not None else self.expected_loss
            factor = self.growth * (2 if name == "val_loss" else 1)  # val loss may overfit
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
            self._check_train_mode(step)
            self._check_zeroed(step)
        if 1 <= step <= self.ratio_steps or (step > 0 and step % 50 == 0):
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
        if float(n.norm()) == 0 or float(g.norm()) == 0:
            return
        cos = float(torch.dot(g, n) / (g.norm() * n.norm()))
        self.unzeroed = self.unzeroed + 1 if cos < 0.99 else 0
        if self.unzeroed >= 2:
            names = {id(q): n for n, q in self.model.named_parameters()} if self.model else {}
            self._stop(
                "grad_not_zeroed",
                round(cos, 3),
                "each step's gradient is its own (cosine with it ≥ 0.99)",
                f"the gradient of {names.get(id(p), 'a parameter')} at step {step} still holds "
                "earlier steps' gradients: zero_grad() is never called, so every step "
                "applies the sum of all gradients so far; call optimizer.zero_grad() each step",
            )

    def _after_step(self) -> None:
        if self.incoming is not None:
            self.incoming.zero_()
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
            worst = max(((r, i) for i, r in enumerate(per_group)), default=(-1.0, 0))
            if worst[0] > 10 * self.ratio_range[1]:
                self._stop(
                    "update_ratio",
                    worst[0],
                    f"≤ {self.ratio_range[1]:g} of the weights' size per step",
                    f"step {self.steps} changed the weights of parameter group {worst[1]} by "
                    f"{worst[0]:.3g}x their size: lr={self._lr(worst[1]):.3g} is far too high "
                    "(later steps may look calm once units saturate)",
                )
        if self.steps == self.ratio_steps + 1 and self.ratios:
            self._judge_ratio(self.ratios[: self.ratio_steps])

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
        found = judge_activations(
            model, rec, self.init, dead_max=self.dead_max, max_gain=self.max_gain
        )
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
    max_gain: float = 4.0,
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
    # a layer's gain (output std over input RMS), judged as the gate's weight_init judges it:
    # a std outside a fixed band warned on every BatchNorm CNN (its next BN rescales) and on
    # PyTorch's default Linear init (std ~0.4), which train fine
    big = {n: round(g, 3) for n, g in rec.gains.items() if n in hidden and g > max_gain}
    out.append(
        Finding(
            f"{probe_prefix}activation_std",
            "warn" if big else "pass",
            big or {n: round(s, 3) for n, s in hidden.items()},
            f"each layer's gain ≤ {max_gain:g}",
            f"layers multiply the signal's std under {label}: {fmt(big)}" if big else "",
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
    s = ctx.settings
    return judge_activations(model, rec, init, dead_max=s.dead_relu_max, max_gain=s.max_layer_gain)


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


def untrained_loss(task: Any) -> float | None:
    """The loss an untrained classifier gives, from the task alone (no data): ln C for a
    softmax loss, ln 2 for a sigmoid one; None where it depends on the data."""
    name, kind = loss_name(task.loss), str(task.kind)
    if kind == "multiclass" and task.num_classes and name in ("cross_entropy", "nll"):
        return math.log(int(task.num_classes))
    if kind in ("binary", "multilabel") and name in ("bce", "bce_prob"):
        return math.log(2)
    return None
