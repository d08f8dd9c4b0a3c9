"""Activation statistics at init: each layer's gain and output std, dead ReLU units and
constant (symmetric) weights, under an init scheme. The gate's `weight_init`, the checks at a
trial's start and the init profiles plotted in the report all read them."""

from __future__ import annotations

from typing import Any

import torch

from sweeper.probes._context import LAYERS, Context
from sweeper.probes._finding import Finding, fmt
from sweeper.training import build_model, forward

DEAD_ROWS = 32  # the fewest rows a unit must be silent on to count as dead


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
            # a layer's statistics come from a batch: one row (an RL policy acting on one
            # observation) is its bias and a few features, not a spread
            if not isinstance(out, torch.Tensor) or out.ndim < 2 or out.shape[0] < 2:
                return
            if name not in self.stds:
                self.stds[name] = float(out.detach().float().std())
                if inputs and isinstance(inputs[0], torch.Tensor):
                    in_rms = float(inputs[0].detach().float().pow(2).mean().sqrt())
                    self.gains[name] = self.stds[name] / max(in_rms, 1e-12)

        return hook

    def _dead_hook(self, name: str) -> Any:
        def hook(_m: Any, _i: Any, out: torch.Tensor) -> None:
            # a unit silent on a few rows is not dead: judged on batches of DEAD_ROWS or more
            if name not in self.dead and out.ndim >= 2 and out.shape[0] >= DEAD_ROWS:
                units = out.detach().reshape(out.shape[0], out.shape[1], -1).amax(dim=(0, 2))
                self.dead[name] = float((units <= 0).float().mean())

        return hook

    def remove(self) -> None:
        """Remove the recorder's hooks."""
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
    """How findings name an init scheme."""
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


def init_profiles(ctx: Context, schemes: list[str]) -> dict[str, dict[str, float]]:
    """Output std of every Linear/Conv layer at init, for each init scheme (a plot in the
    dashboard and the report shows which schemes keep the signal's scale through the net)."""
    out: dict[str, dict[str, float]] = {}
    for scheme in schemes:
        sub = Context(ctx.task, ctx.data, {**ctx.params, "init": scheme}, ctx.device, ctx.settings)
        found = [f for f in activation_stats(sub) if f.probe == "trial_activation_std"]
        out[scheme] = found[0].details.get("std", {}) if found else {}
    return out
