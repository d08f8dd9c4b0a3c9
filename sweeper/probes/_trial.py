"""Per-trial probes: the trial monitor, which stops a broken trial early through hooks only
(optimizer step hooks, forward hooks at sampled steps, `trial.report`'s metrics, the loss
`trial.step` hands over), so the same checks run in sweeper's loop and in a user's `fit`. Its
optimizer-step checks are here; see `_trial_layers.py` and `_trial_metrics.py` for the rest.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from sweeper.probes._activations import ActivationRecorder
from sweeper.probes._finding import Finding
from sweeper.probes._layer_watch import LayerWatch
from sweeper.probes._settings import Thresholds
from sweeper.probes._trial_layers import LayerChecks
from sweeper.probes._trial_metrics import MetricChecks
from sweeper.probes._trial_modes import ModeChecks
from sweeper.probes._trial_updates import UpdateChecks


class TrialMonitor(UpdateChecks, MetricChecks, LayerChecks, ModeChecks):
    """Watches a whole trial, sampling steps (every `trial_every_early` within the first
    `trial_window` steps, then every `trial_every`); a failed check raises TrialStopped, a
    warning is recorded once per trial. Here: the optimizer's parameters, gradients, train
    mode, zeroing, update ratios and weights that never change, and the loss `trial.step`
    hands over (the train/eval modes, freezing and held parameters: `_trial_modes.py`);
    with `first_forward`, the activation statistics of the first forward (a `fit`, whose
    model the trial-start checks could not build).
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
        self.steps = 0  # optimizer steps taken
        self.findings: list[Finding] = []
        self.warned: set[str] = set()
        self.seconds = 0.0
        self.model: torch.nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.handles: list[Any] = []
        self.stopped: str | None = None  # why a check stopped the trial
        # further models watched in the same trial (a GAN's generator and discriminator, an
        # actor and a critic): a monitor each, sharing this one's findings and its stop
        self.others: list[TrialMonitor] = []
        self.parent: TrialMonitor | None = None
        self.way = "fit" if own_loop else "sweeper"
        self.busy = False  # the monitor runs the model itself (a replay, a second eval pass)
        self.stochastic: list[torch.nn.Module] = []
        self.trained_forward = False
        self.eval_checked = False
        self.cold: dict[str, torch.Tensor] | None = None
        self.before_eval: tuple[dict[tuple[int, str], Any], dict[str, torch.Tensor]] | None = None
        self.also_held: set[int] = set()  # parameters other optimizers of the trial hold
        self.frozen: list[tuple[str, torch.Tensor, torch.Tensor]] = []

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
    def watch(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Attach to the model and optimizer the trial trains: optimizer step hooks, a hook on the
        inputs, the layer hooks for the first sampled forward (and the first-forward statistics
        in a `fit`); stops a stale optimizer at once. A second model is watched beside the
        first (its own monitor, the same findings); the same model again replaces its
        optimizer. Without an optimizer (weights updated by hand) the checks that need none
        run: the layers' outputs, the loss handed to `trial.step`, the reports."""
        if self.parent is None and self.model is not None and model is not self.model:
            other = next((o for o in self.others if o.model is model), None)
            if other is None:
                other = self._sibling()
                self.others.append(other)
            other.watch(model, optimizer)
            return
        self.close(keep_others=True)
        self.model, self.optimizer = model, optimizer
        self.handles += self._watch_modes(model)
        if optimizer is None:
            self._watch_layers(model)
            return
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
            optimizer.register_step_pre_hook(self._pre_step),
            optimizer.register_step_post_hook(lambda *_: self._timed(self._after_step)),
        ]
        self._watch_layers(model)

    def _sibling(self) -> TrialMonitor:
        """A monitor for one more model of the trial: this one's settings, findings, stop."""
        other = TrialMonitor(
            self.s,
            first_forward=self.first_forward,
            init=self.init,
            epochs=self.epochs,
            own_loop=self.own_loop,
        )
        other.parent, other.findings, other.warned = self, self.findings, self.warned
        other.way = self.way
        return other

    def _watch_layers(self, model: torch.nn.Module) -> None:
        """The layer hooks (outputs: non-finite, exploding, dead or saturated units) and the
        first-forward statistics."""
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

            def once(m: torch.nn.Module, *_: Any) -> None:
                if not m.training:  # an evaluation before training: not the init's statistics
                    recorder.stds, recorder.gains, recorder.dead = {}, {}, {}
                    return
                recorder.remove()
                handle.remove()
                self._timed(lambda: self._judge_first_forward(model, recorder))

            handle = model.register_forward_hook(once)

    def _pre_step(self, _opt: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The optimizer step pre-hook. A step given a closure (Lightning's automatic
        optimization, LBFGS) computes its gradients inside `step`, after this hook: the
        checks then run when the closure first returns, before the update."""
        # args[0] is the optimizer itself (torch hands the pre-hook step's own arguments)
        closure = kwargs.get("closure", args[1] if len(args) > 1 else None)
        if closure is None:
            self._timed(self._before_step)
            return None
        done = False

        def checked() -> Any:
            nonlocal done
            result = closure()
            if not done:
                done = True
                self._timed(self._before_step)
            return result

        if "closure" in kwargs:
            return args, {**kwargs, "closure": checked}
        return (args[0], checked, *args[2:]), kwargs

    def _check_optimizer(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer must hold the watched model's parameters: a model rebuilt after
        its optimizer was made trains nothing."""
        held = {id(p) for g in optimizer.param_groups for p in g["params"]}
        trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        if trainable and not any(id(p) in held for p in model.parameters() if p.requires_grad):
            frozen_held = any(id(p) in held for p in model.parameters())
            why = (
                "it holds only parameters that are frozen now (requires_grad=False): the "
                "layers left trainable were frozen when the optimizer was built, or the "
                "freezing happened the wrong way round; build the optimizer from "
                "[p for p in model.parameters() if p.requires_grad] after freezing, or add "
                "the unfrozen ones with optimizer.add_param_group"
                if frozen_held
                else "the model was rebuilt (or moved with a copy) after the optimizer was "
                "made; "
                + self._fix(
                    "stale_optimizer",
                    "build the optimizer from the model you train, after .to(device)",
                )
            )
            self._stop(
                "stale_optimizer",
                f"0 of {len(trainable)} trainable parameters",
                "the optimizer holds the model's parameters",
                f"the optimizer holds none of the watched model's trainable parameters: {why}",
            )

    def _keep_input(self, _m: Any, args: Any, kwargs: Any) -> None:
        self.last_input = (args, kwargs)

    def _gather_incoming(self) -> None:
        """From now to the next optimizer step, sum the probe parameter's own gradients as
        backward produces them (a tensor hook), for `_check_zeroed`."""
        p = self.probe_param
        if p is None or self.incoming is not None or not p.requires_grad:
            return  # a parameter frozen after watch() gets no gradient to sum
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

    def close(self, keep_others: bool = False) -> None:
        """Remove every hook (and the other models' monitors', unless `keep_others`) and add
        the layer hooks' time to `seconds`."""
        if not keep_others:
            for other in self.others:
                other.close()
                self.seconds += other.seconds
                other.seconds = 0.0
        for h in self.handles:
            h.remove()
        self.handles = []
        self._drop_incoming()
        if self.layers is not None:
            self.seconds += self.layers.seconds
            self.layers.seconds = 0.0
            self.layers.disarm()

    # -- the loss the loop hands over ----------------------------------------------------------
    def on_loss(self, loss: torch.Tensor) -> None:
        """A step's loss from `trial.step`, read at sampled steps: not finite, or growing past
        `loss_growth` x its start, stops the trial."""
        step = self.steps
        if self.due(step):  # a sampled step: reading a loss is a host sync
            self._timed(lambda: self._check_loss(step, loss))
        if self.optimizer is None and self.model is not None:
            self._timed(self._hand_step)  # weights updated by hand: a step is a loss

    def _hand_step(self) -> None:
        """For a loop without an optimizer: the layer checks at the step `trial.step` marks."""
        if self.layers is not None and self.layers.armed:
            self._judge_layers(self.steps, self.layers.judge())
        self.steps += 1
        if self.layers is not None and self.hooked(self.steps):
            self.layers.arm()

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
        if step == 0:
            self._check_train_override()
        if self.due(step):
            self._check_grads(step)
            self._check_train_mode(step)
            self._check_zeroed(step)
            self._judge_unheld()
            self._fingerprint_frozen()
        self._drop_incoming()
        if 1 <= step <= self.s.update_ratio_steps or (step > 0 and step % self.s.trial_every == 0):
            self.snapshot = self._snapshot()

    def _check_train_mode(self, step: int) -> None:
        """Dropout and BatchNorm in eval mode at an optimizer step: model.train() forgotten
        after an evaluation (a BatchNorm frozen on purpose has no trainable parameters)."""
        # a BatchNorm frozen on purpose (its parameters frozen since watch) does not count
        norms = [
            m
            for m in self.norms
            if not isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
            or any(p.requires_grad for p in m.parameters())
        ]
        if norms and not any(m.training for m in norms):
            kinds = sorted({type(m).__name__ for m in norms})
            self._stop(
                "eval_mode_training",
                f"{len(norms)} {'/'.join(kinds)} modules in eval mode",
                "train mode at optimizer steps",
                f"optimizer step {step} runs with the model in eval mode ({', '.join(kinds)} "
                "behave as at inference: no dropout, frozen statistics): "
                + self._fix(
                    "eval_mode_training",
                    "call model.train() at the start of each epoch, after any evaluation",
                ),
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
                "applies the sum of all gradients so far; "
                + self._fix("grad_not_zeroed", "call optimizer.zero_grad() each step"),
            )

    def _after_step(self) -> None:
        self.steps += 1
        if self.frozen:
            self._judge_frozen()
        if self.due(self.steps):
            self._gather_incoming()
        if self.snapshot:
            self._judge_update(self._update_ratios())
        if self.steps == self.s.update_ratio_steps + 1 and self.ratios:
            self._judge_ratio(self.ratios[: self.s.update_ratio_steps])
        if self.layers is not None and self.hooked(self.steps):
            self.layers.arm()  # records the forward before that step
