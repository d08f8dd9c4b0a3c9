"""The trial monitor's layer checks: a NaN caught at the step it appears (one small parameter's
gradient summed at every step) and the step's forward replayed with the layer hooks to name the
layer where it started, nan inputs named as data, and the layer hooks' verdicts at sampled
steps (a layer exploding, units dying or saturating)."""

from __future__ import annotations

import math
from typing import Any

import torch

from sweeper.errors import TrialStopped
from sweeper.probes._activations import ActivationRecorder, judge_activations
from sweeper.probes._layer_watch import LayerFault
from sweeper.probes._trial_base import MonitorBase


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


class LayerChecks(MonitorBase):
    """The layer checks (mixed into TrialMonitor)."""

    probe_param: torch.Tensor | None
    lagged: bool
    pending: torch.Tensor | None
    last_input: tuple[Any, Any] | None
    init: str  # the trial's init scheme, as the first-forward findings name it
    busy: bool

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
            self.busy = True
            try:
                with torch.no_grad():
                    self.model(*args, **kwargs)
            except Exception:  # noqa: BLE001 - a model that cannot replay: the caller names it
                pass
            finally:
                self.busy = False
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
        gaps = self.layers.gaps if self.layers is not None else []
        if gaps:
            names = ", ".join(gaps[:3]) + (f" and {len(gaps) - 3} more" if len(gaps) > 3 else "")
            self._warn(
                "autocast_coverage",
                names,
                "every matmul layer of a mixed-precision forward in half precision",
                f"{names} ran in float32 in a forward whose other layers ran under autocast in "
                "half precision: called outside the autocast region (or with autocast "
                "disabled around them), they lose its speed and memory savings; run the "
                "whole forward and the loss inside torch.autocast (ignore this if a layer is "
                "kept in float32 on purpose)",
            )
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

    def _judge_first_forward(self, model: torch.nn.Module, rec: ActivationRecorder) -> None:
        found = judge_activations(
            model, rec, self.init, dead_max=self.s.dead_relu_max, max_gain=self.s.max_layer_gain
        )
        self.findings.extend(found)
        failed = [f for f in found if f.verdict == "fail"]
        if failed:
            raise TrialStopped(self._mark_stopped(f"{failed[0].probe}: {failed[0].hint}"))
