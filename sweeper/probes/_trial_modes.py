"""The trial monitor's mode checks: what the model's train/eval mode, its freezing and its
state do, against what the loop asked of them. Each is a class of silent bug from real
reports (TrainCheck's reproductions, the PyTorch and Hugging Face trackers):

- `eval_stochastic`: an evaluation (a forward without gradients) with Dropout or BatchNorm in
  train mode, or two eval-mode passes over the same batch that differ (a dropout, or an
  attention's dropout_p, not gated on self.training).
- `eval_before_train`: the model evaluated before any train-mode forward, whose first
  train-mode forward then rewrote a buffer from scratch (the old spectral_norm's power
  iteration): the evaluation read uninitialised state.
- `train_not_called`: a model whose own `train()` freezes layers or puts some in eval mode,
  trained without it ever being called.
- `frozen_updated`: a parameter with requires_grad=False that an optimizer step changed.
- `unheld_params`: parameters that get gradients but that the optimizer does not hold (a head
  replaced, or layers unfrozen, after the optimizer was built).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sweeper.probes._trial_base import MonitorBase

_RUNNING_STATS = nn.modules.batchnorm._NormBase  # BatchNorm/InstanceNorm: their init is neutral
_COLD_NUMBERS = 1 << 24  # buffers above this many numbers in all are not copied
_FINGERPRINT = 4096  # numbers of each frozen parameter compared across a step
_RERUN_ROWS = 32  # rows of the first evaluated batch run a second time


def _stochastic(model: nn.Module) -> list[nn.Module]:
    """The modules whose train mode makes an evaluation wrong: dropout, batch statistics."""
    return [
        m
        for m in model.modules()
        if (isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0)
        or (isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats)
    ]


def _first_float(out: Any) -> torch.Tensor | None:
    """The first floating tensor of a forward's output (a tensor, a tuple, a dict or a
    Hugging Face ModelOutput), one level deep."""
    items = (
        [out]
        if isinstance(out, torch.Tensor)
        else list(out.values())
        if isinstance(out, dict)
        else list(out)
        if isinstance(out, (list, tuple))
        else []
    )
    return next(
        (t for t in items if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel()),
        None,
    )


def _needs_grad(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether an input requires grad: a reentrant checkpoint runs the forward without
    gradients on purpose, and its inputs do."""
    return any(isinstance(t, torch.Tensor) and t.requires_grad for t in (*args, *kwargs.values()))


def _head(
    args: tuple[Any, ...], kwargs: dict[str, Any], out: torch.Tensor, rows: int
) -> tuple[tuple[Any, ...], dict[str, Any], int | None]:
    """The inputs cut to their first `rows` rows when every tensor among them and the output
    share one leading (batch) size above it, with that size; else the inputs as they are."""
    tensors = [t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)]
    n = out.shape[0] if out.ndim else 0
    if n <= rows or not tensors or any(t.ndim == 0 or t.shape[0] != n for t in tensors):
        return args, kwargs, None

    def cut(v: Any) -> Any:
        return v[:rows] if isinstance(v, torch.Tensor) else v

    return tuple(cut(a) for a in args), {k: cut(v) for k, v in kwargs.items()}, rows


def _cold_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the floating buffers outside normalisation layers (whose running statistics
    start neutral), if they are small enough to copy."""
    found = {
        f"{name}.{b_name}" if name else b_name: b
        for name, m in model.named_modules()
        if not isinstance(m, _RUNNING_STATS)
        for b_name, b in m.named_buffers(recurse=False)
        if b is not None and b.is_floating_point() and b.numel()
    }
    if sum(b.numel() for b in found.values()) > _COLD_NUMBERS:
        return {}
    return {k: b.detach().clone() for k, b in found.items()}


def _state(model: nn.Module) -> tuple[dict[tuple[int, str], Any], dict[str, torch.Tensor]]:
    """What a forward may change besides its output: tensors kept as module attributes (an RNN's
    hidden state stored on `self`), by identity, and copies of the buffers (when small)."""
    attrs = {
        (id(m), k): v
        for m in model.modules()
        for k, v in vars(m).items()
        if isinstance(v, torch.Tensor)
        or (isinstance(v, tuple) and v and all(isinstance(t, torch.Tensor) for t in v))
    }
    buffers = dict(model.named_buffers())
    if sum(b.numel() for b in buffers.values()) > _COLD_NUMBERS:
        return attrs, {}
    return attrs, {k: b.detach().clone() for k, b in buffers.items()}


def _changed(
    model: nn.Module, before: tuple[dict[tuple[int, str], Any], dict[str, torch.Tensor]]
) -> bool:
    """Whether a forward changed the state `_state` took before it."""
    attrs, buffers = _state(model)[0], dict(model.named_buffers())
    old_attrs, old_buffers = before
    if attrs.keys() != old_attrs.keys() or any(attrs[k] is not v for k, v in old_attrs.items()):
        return True
    return any(k not in buffers or not torch.equal(buffers[k], b) for k, b in old_buffers.items())


class ModeChecks(MonitorBase):
    """The mode checks (mixed into TrialMonitor). `busy` is set while the monitor runs the
    model itself, so its own forwards are not judged."""

    busy: bool
    stochastic: list[nn.Module]
    trained_forward: bool  # a train-mode forward of the watched model was seen
    eval_checked: bool
    cold: dict[str, torch.Tensor] | None
    before_eval: tuple[dict[tuple[int, str], Any], dict[str, torch.Tensor]] | None
    frozen: list[tuple[str, torch.Tensor, torch.Tensor]]
    also_held: set[int]

    def _watch_modes(self, model: nn.Module) -> list[Any]:
        """The hooks on the watched model's own forward (its handles, to remove)."""
        self.stochastic = _stochastic(model)
        return [
            model.register_forward_pre_hook(self._mode_pre, with_kwargs=True),
            model.register_forward_hook(self._mode_post, with_kwargs=True),
        ]

    # -- forwards ------------------------------------------------------------------------------
    def _mode_pre(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.busy:
            return
        if module.training:
            if (
                not torch.is_grad_enabled()
                and "eval_stochastic" not in self.warned
                and not _needs_grad(args, kwargs)
            ):
                self._timed(self._judge_train_mode_eval)
        else:
            if not self.trained_forward and self.cold is None:
                self.cold = _cold_buffers(module)
            if not self.eval_checked:
                self.before_eval = _state(module)  # to tell a stateful forward from a random one

    def _mode_post(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
    ) -> None:
        if self.busy:
            return
        if module.training:
            if not self.trained_forward:
                self.trained_forward = True
                cold, self.cold = self.cold, None
                if cold:
                    self._timed(lambda: self._judge_cold(module, cold))
        elif not self.eval_checked:
            self.eval_checked = True
            self._timed(lambda: self._judge_eval_twice(module, args, kwargs, out))

    def _judge_train_mode_eval(self) -> None:
        live = [m for m in self.stochastic if m.training]
        if not live:
            return
        kinds = "/".join(sorted({type(m).__name__ for m in live}))
        self._warn(
            "eval_stochastic",
            f"{len(live)} {kinds} modules in train mode",
            "eval mode when evaluating",
            f"a forward without gradients (an evaluation) runs with {kinds} in train mode: "
            "dropout stays on and BatchNorm updates its statistics from the evaluated data, "
            "so the metrics reported are noisy and the model drifts; call model.eval() before "
            "evaluating and model.train() after",
        )

    def _judge_eval_twice(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
    ) -> None:
        """The first eval-mode forward, run once more on the same inputs (under its own
        random state, so the user's random stream is untouched): it must give the same."""
        first = _first_float(out)
        before, self.before_eval = self.before_eval, None
        if first is None or before is None or _changed(module, before):
            return  # a forward that keeps state (a hidden state on self) cannot run twice alike
        device = first.device
        args, kwargs, rows = _head(args, kwargs, first, _RERUN_ROWS)
        if rows is not None:
            first = first[:rows]  # rows of an eval-mode batch do not depend on each other
        self.busy = True
        try:
            devices = [device] if device.type == "cuda" else []
            with torch.no_grad(), torch.random.fork_rng(devices=devices):
                again = _first_float(module(*args, **kwargs))
        except Exception:  # noqa: BLE001 - a model that cannot run twice is not judged
            return
        finally:
            self.busy = False
        if again is None or again.shape != first.shape:
            return
        a, b = first.detach().float(), again.float()
        diff = float((a - b).abs().max() / a.abs().max().clamp_min(1.0))
        if diff > self.s.eval_determinism_tol:
            self._stop(
                "eval_stochastic",
                f"relative difference {diff:.3g}",
                f"two eval-mode passes agree within {self.s.eval_determinism_tol:g}",
                "two eval-mode passes over the same batch differ: something random stays on "
                "after model.eval(), an F.dropout(x, p) or an attention's dropout_p not gated "
                "on self.training (pass training=self.training, dropout_p=p if self.training "
                "else 0.0)",
            )

    def _judge_cold(self, module: nn.Module, cold: dict[str, torch.Tensor]) -> None:
        """The model ran in eval mode before any train-mode forward, which has now run: a
        buffer it rewrote from scratch was read uninitialised by that evaluation."""
        now = dict(module.named_buffers())
        moved = []
        for name, before in cold.items():
            after = now.get(name)
            if after is None or after.shape != before.shape:
                continue
            change = float((after.float() - before.float()).norm())
            if change > 0.5 * float(before.float().norm()) + 1e-12:
                moved.append(name)
        if moved:
            names = ", ".join(moved[:3]) + (f" and {len(moved) - 3} more" if len(moved) > 3 else "")
            self._warn(
                "eval_before_train",
                names,
                "state that eval mode reads is set before the first evaluation",
                f"the model ran in eval mode before any train-mode forward, and the first "
                f"train-mode forward then rewrote {names} from scratch (a spectral_norm's "
                "power-iteration vectors, or state a module sets on its first training "
                "forward): that evaluation read uninitialised state; run one train-mode "
                "forward before evaluating, or use torch.nn.utils.parametrizations."
                "spectral_norm",
            )

    # -- the first optimizer step --------------------------------------------------------------
    def _check_train_override(self) -> None:
        """A model whose own train() changes requires_grad or modes (a backbone's
        frozen stages, BatchNorm kept in eval) must have had it called by the first step."""
        model = self.model
        if model is None or not model.training:
            return
        if all(type(m).train is nn.Module.train for m in model.modules()):
            return
        grads = {n: p.requires_grad for n, p in model.named_parameters()}
        modes = {n: m.training for n, m in model.named_modules()}
        self.busy = True
        try:
            model.train(True)
            then_grads = {n: p.requires_grad for n, p in model.named_parameters()}
            then_modes = {n: m.training for n, m in model.named_modules()}
        finally:  # the model as the loop left it: sweeper judges, it does not repair
            for n, p in model.named_parameters():
                if n in grads:
                    p.requires_grad_(grads[n])
            for n, m in model.named_modules():
                if n in modes:
                    m.training = modes[n]
            self.busy = False
        frozen = [n for n, g in grads.items() if g and not then_grads.get(n, g)]
        to_eval = [n for n, t in modes.items() if t and not then_modes.get(n, t)]
        if not frozen and not to_eval:
            return
        owner = next(
            type(m).__name__ for m in model.modules() if type(m).train is not nn.Module.train
        )
        parts = []
        if frozen:
            parts.append(f"freezes {len(frozen)} parameters ({', '.join(frozen[:3])}, …)")
        if to_eval:
            parts.append(f"puts {len(to_eval)} modules in eval mode ({', '.join(to_eval[:3])}, …)")
        what = " and ".join(parts)
        self._stop(
            "train_not_called",
            what,
            "the model's own train() has run before training",
            f"{owner}.train() {what}, but the loop never called model.train(): those layers "
            "train as if the model had no such setting (a frozen_stages or norm_eval that "
            "does not take effect); call model.train() at the start of each epoch",
        )

    # -- frozen and unheld parameters ----------------------------------------------------------
    def _fingerprint_frozen(self) -> None:
        """Before a sampled step: a few numbers of each frozen parameter the optimizer holds."""
        assert self.optimizer is not None and self.model is not None
        names = {id(p): n for n, p in self.model.named_parameters()}
        self.frozen = [
            (names.get(id(p), "a parameter"), p, p.detach().flatten()[:_FINGERPRINT].clone())
            for g in self.optimizer.param_groups
            for p in g["params"]
            if not p.requires_grad
        ]

    def _judge_frozen(self) -> None:
        """After the step: a frozen parameter that changed."""
        frozen, self.frozen = self.frozen, []
        for name, p, before in frozen:
            if not torch.equal(p.detach().flatten()[:_FINGERPRINT], before):
                self._stop(
                    "frozen_updated",
                    name,
                    "parameters with requires_grad=False stay as they are",
                    f"{name} is frozen (requires_grad=False) but optimizer step {self.steps} "
                    "changed it: the optimizer still holds it and applies its momentum or "
                    "weight decay (its .grad was zeroed, not set to None, or was left from "
                    "before the freezing); "
                    + self._fix(
                        "frozen_updated",
                        "build the optimizer over the trainable parameters only, or set "
                        "p.grad = None when freezing",
                    ),
                )

    def _judge_unheld(self) -> None:
        """Parameters that get gradients but that no optimizer step applies."""
        assert self.optimizer is not None and self.model is not None
        held = {id(p) for g in self.optimizer.param_groups for p in g["params"]}
        held |= self.also_held  # the trial's other optimizers (Lightning's second, ...)
        unheld = [
            n
            for n, p in self.model.named_parameters()
            if p.requires_grad and p.grad is not None and id(p) not in held
        ]
        if unheld:
            names = ", ".join(unheld[:3]) + (
                f" and {len(unheld) - 3} more" if len(unheld) > 3 else ""
            )
            self._warn(
                "unheld_params",
                names,
                "every parameter that gets a gradient is held by the optimizer",
                f"{names} get gradients but the optimizer does not hold them, so they never "
                "change: a layer replaced (a new head) or unfrozen after the optimizer was "
                "built; "
                + self._fix(
                    "unheld_params",
                    "build the optimizer after changing the model, or add them with "
                    "optimizer.add_param_group",
                ),
            )
