"""Forward hooks on every module for one forward pass at sampled steps of a trial: the first
layer whose output turns non-finite or explodes (named, as DeepLocalize does), and ReLU units
that die or tanh/sigmoid units that saturate during training (not only at init).

The hooks are installed for the forward before a sampled optimizer step and removed when the
step comes, so the steps in between run without them.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

_SATURATING = (nn.Tanh, nn.Sigmoid)
_MATMUL = (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd)  # the layers autocast lowers
_LOW = (torch.float16, torch.bfloat16)
MASKS = 3  # sampled forwards a unit must be dead (saturated) at, in a row, to count
MASK_ROWS = 32  # and the rows those forwards must hold together


@dataclass
class LayerFault:
    """What a sampled forward showed about one layer."""

    probe: str  # "nonfinite_activation" | "activation_explosion" | "dead_units" | "saturated_units"
    layer: str
    measured: float
    first: float  # the same measure at the trial's first sampled forward
    before: str  # the last module whose output was still finite ("" if none)


def _floating(out: Any) -> list[torch.Tensor]:
    """The floating tensors of a module's output (a tensor, a tuple/list, a dict or a Hugging
    Face ModelOutput), one level deep."""
    if isinstance(out, torch.Tensor):
        items = [out]
    elif isinstance(out, Mapping):
        items = list(out.values())
    elif isinstance(out, (list, tuple)):
        items = list(out)
    else:
        return []
    return [t for t in items if isinstance(t, torch.Tensor) and t.is_floating_point()]


def _sample_dims(t: torch.Tensor) -> tuple[int, ...]:
    """The dimensions that index samples, not units: the batch for (N, C), the batch and the
    positions for (N, T, F) sequences (units last), the batch and the pixels for (N, C, H, W)
    (units are channels)."""
    if t.ndim == 3:
        return (0, 1)
    return (0, *range(2, t.ndim))


class LayerWatch:
    """Records each module's output on the armed forward pass: its largest magnitude and RMS,
    and for ReLU / tanh / sigmoid modules the share of units dead or saturated over the batch.
    One host sync per sampled step, in `judge`."""

    def __init__(
        self, model: nn.Module, growth: float, dead_max: float, saturated_max: float
    ) -> None:
        self.model = model
        self.growth = growth
        self.dead_max = dead_max
        self.saturated_max = saturated_max
        self.handles: list[Any] = []
        self.rows: list[tuple[str, str, torch.Tensor]] = []  # (layer, measure, value)
        self.seen: set[str] = set()
        self.measured: dict[int, torch.Tensor] = {}  # outputs measured, by where they live
        self.ptrs: dict[str, int] = {}  # where each output lives: the model's own output is
        # scaled by its targets (a regression on raw prices), so it is not judged for growth
        self.first: dict[tuple[str, str], float] = {}
        # per ReLU / tanh / sigmoid module, which units were dead (saturated) for the whole
        # batch at each sampled forward, with the batch's rows: a unit counts only if it was
        # at the last MASKS of them and on MASK_ROWS rows at least (a unit silent on one
        # small batch is not dead)
        self.masks: list[tuple[str, str, torch.Tensor, int]] = []
        self.history: dict[tuple[str, str], deque[tuple[torch.Tensor, int]]] = {}
        self.seconds = 0.0  # hook time (the checks' own time is the monitor's)
        # per matmul layer of the armed forward: whether autocast was on, the output's dtype
        # and the weight's; `gaps` the layers a mixed-precision forward left in float32
        self.precision: list[tuple[str, bool, torch.dtype, torch.dtype | None]] = []
        self.gaps: list[str] = []

    @property
    def armed(self) -> bool:
        """Whether the hooks wait for the next forward."""
        return bool(self.handles)

    def arm(self) -> None:
        """Hook every module for the next forward pass."""
        if self.armed:
            return
        self.rows, self.masks, self.seen, self.ptrs = [], [], set(), {}
        self.measured, self.precision = {}, []
        for name, module in self.model.named_modules():
            self.handles.append(module.register_forward_hook(self._hook(name or "(model)")))

    def disarm(self) -> None:
        """Remove the hooks and let go of the outputs held."""
        for h in self.handles:
            h.remove()
        self.handles = []
        self.measured = {}

    def _hook(self, name: str) -> Any:
        def hook(module: nn.Module, _inputs: Any, out: Any) -> None:
            if name in self.seen:  # a module called twice in one forward: its first call
                return
            self.seen.add(name)
            t0 = time.perf_counter()
            with torch.no_grad():
                # a module's main output (an LSTM's sequence, not its state)
                v = next((t.detach() for t in _floating(out) if t.numel()), None)
                if v is not None:
                    self._measure(name, module, v)
                    if isinstance(module, _MATMUL):
                        w = getattr(module, "weight", None)
                        self.precision.append(
                            (
                                name,
                                torch.is_autocast_enabled(v.device.type),
                                v.dtype,
                                w.dtype if isinstance(w, torch.Tensor) else None,
                            )
                        )
            self.seconds += time.perf_counter() - t0

        return hook

    def _measure(self, name: str, module: nn.Module, v: torch.Tensor) -> None:
        """Queue the output's peak and RMS (once per tensor: a container passing a child's
        output on, or an in-place op, holds one already measured) and, for ReLU / tanh /
        sigmoid modules, which units are dead or saturated over the whole batch."""
        self.ptrs[name] = v.data_ptr()
        if v.data_ptr() not in self.measured:
            # held until judged: memory freed mid-forward (no_grad) would be reused at the
            # same address by a later output, which would then be skipped
            self.measured[v.data_ptr()] = v
            # fp16/bf16 summed in float32; float32 and float64 in their own precision
            wide = torch.float32 if v.dtype in (torch.float16, torch.bfloat16) else None
            peak = torch.linalg.vector_norm(v, float("inf"), dtype=wide)
            norm = torch.linalg.vector_norm(v, 2, dtype=wide)
            self.rows.append((name, "peak", peak))
            self.rows.append((name, "rms", norm / math.sqrt(v.numel())))
        if v.ndim < 2 or not isinstance(module, (nn.ReLU, *_SATURATING)):
            return
        dims = _sample_dims(v)
        rows = math.prod(v.shape[d] for d in dims)
        if isinstance(module, nn.ReLU):
            self.masks.append((name, "dead", v.amax(dim=dims) <= 0, rows))
            return
        lo, hi = (-0.99, 0.99) if isinstance(module, nn.Tanh) else (0.01, 0.99)
        stuck = (v.amax(dim=dims) <= lo) | (v.amin(dim=dims) >= hi)
        self.masks.append((name, "saturated", stuck, rows))

    def _precision_gaps(self) -> list[str]:
        """The matmul layers that ran in float32 (with float32 weights) in a forward whose
        other matmul layers ran under autocast in half precision: outside the autocast region,
        or inside it but not lowered."""
        rows, self.precision = self.precision, []
        if not any(on and dtype in _LOW for _, on, dtype, _ in rows):
            return []
        return [n for n, _, dtype, w in rows if dtype == torch.float32 and w == torch.float32]

    def judge(self) -> list[LayerFault]:
        """Disarm, then what the recorded pass shows, in the order the modules finished their
        forward: the first non-finite output, the first exploding one, then dying units."""
        self.disarm()
        self.gaps = self._precision_gaps()
        for layer, what, mask, n in self.masks:
            hist = self.history.setdefault((layer, what), deque(maxlen=MASK_ROWS))
            if hist and hist[-1][0].shape != mask.shape:
                hist.clear()
            hist.append((mask, n))
            recent, seen_rows = [], 0
            for m, k in reversed(hist):
                recent.append(m)
                seen_rows += k
                if len(recent) >= MASKS and seen_rows >= MASK_ROWS:
                    share = torch.stack(recent).all(0).float().mean()
                    self.rows.append((layer, what, share))
                    break
        self.masks = []
        if not self.rows:
            return []
        values = torch.stack([v.float() for _, _, v in self.rows]).tolist()
        rows = [
            (layer, what, float(x)) for (layer, what, _), x in zip(self.rows, values, strict=True)
        ]
        self.rows = []
        faults: list[LayerFault] = []
        before = ""
        for layer, what, x in rows:
            if what == "peak":
                if not math.isfinite(x):
                    faults.append(LayerFault("nonfinite_activation", layer, x, 0.0, before))
                    break
                before = layer
        exploded = bool(faults)
        output = self.ptrs.get("(model)")
        for layer, what, x in rows:
            if layer == "(model)" or self.ptrs.get(layer) == output:
                continue
            first = self.first.setdefault((layer, what), x)
            if what == "rms" and not exploded and x > self.growth * max(first, 1.0):
                peak = next(v for n, w, v in rows if n == layer and w == "peak")
                faults.append(LayerFault("activation_explosion", layer, peak, first, ""))
                exploded = True
            elif what == "dead" and x > self.dead_max and x >= first + 0.25:
                faults.append(LayerFault("dead_units", layer, x, first, ""))
            elif what == "saturated" and x > self.saturated_max and x >= first + 0.25:
                faults.append(LayerFault("saturated_units", layer, x, first, ""))
        return faults
