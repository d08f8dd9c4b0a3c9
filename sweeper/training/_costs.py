"""What a trial costs, measured by sweeper on the model it trains, so that a study can search
accuracy against size, speed and memory without the user writing the measurement.

Only the costs an objective or a constraint names are measured (`Definition.cost_metrics`),
once, at the trial's last report, on the first model given to `trial.watch`:

- `params`: trainable parameters.
- `flops`: floating-point operations of one eval-mode forward, per sample, counted by
  `torch.utils.flop_counter.FlopCounterMode` on the fixed batch below.
- `latency_ms`: the median wall time of an eval-mode forward without gradients of one fixed
  batch of `costs.batch` rows (default 1: a single request), after two warm-up forwards, on the
  trial's device (synchronized on a GPU). The batch is the first forward's inputs cut (or
  repeated) to that many rows along their first dimension, so every trial is timed on the same
  input whatever its batch_size.
- `peak_memory_mb`: on a GPU, the allocator's peak (`torch.cuda.max_memory_allocated`) since
  the trial started; on a CPU, the process's peak resident memory during the trial above what
  it held when the trial started (Linux's VmHWM, reset at the start through
  /proc/self/clear_refs): what the trial itself needed at its peak, the interpreter and torch
  left out. Where VmHWM cannot be reset (a /proc that is read-only), the largest resident
  memory seen at the trial's reports stands in for the peak (a lower bound). Off Linux the
  metric is missing and the trial says why.
- `train_seconds`: wall time from the trial's start to its last report, the waits on the
  driver between epochs left out.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_map

WARMUP = 2
RUNS = 20  # at most; fewer when they would cost more than SHARE of the trial
MIN_RUNS = 5
SHARE = 0.01


class Costs:
    """Measures the named costs of one trial (see the module's docstring)."""

    def __init__(self, names: list[str], batch: int, device: torch.device) -> None:
        self.names = list(names)
        self.batch = batch
        self.device = device
        self.started = time.perf_counter()
        self.waited = 0.0  # seconds the trial's code waited on the driver
        self.inputs: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self._hook: Any = None
        self.base_kb: int | None = None
        self.hwm = False  # VmHWM was reset at the start: it is the trial's own peak
        self.seen_kb = 0  # the largest resident memory seen at a report (the fallback)
        if "peak_memory_mb" in self.names:
            self._reset_peak()

    def sample(self) -> None:
        """At each report: the resident memory now (one read of /proc, only for a study
        that measures peak_memory_mb without a resettable VmHWM)."""
        if self.hwm or self.base_kb is None or self.device.type == "cuda":
            return
        now = _status_kb("VmRSS")
        if now is not None:
            self.seen_kb = max(self.seen_kb, now)

    # -- while the trial runs ----------------------------------------------------------------
    def watch(self, model: nn.Module) -> None:
        """Keep the first forward's inputs of the trial's model (cut to the fixed batch)."""
        if self._hook is not None or self.inputs is not None:
            return
        if not {"flops", "latency_ms"} & set(self.names):
            return
        self._hook = model.register_forward_pre_hook(self._keep, with_kwargs=True)

    def _keep(self, _m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.inputs = (tree_map(self._rows, args), tree_map(self._rows, kwargs))
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _rows(self, x: Any) -> Any:
        if not isinstance(x, torch.Tensor) or x.dim() == 0:
            return x
        x = x.detach()
        if x.shape[0] < self.batch:
            x = x.repeat(-(-self.batch // x.shape[0]), *([1] * (x.dim() - 1)))
        return x[: self.batch].clone()

    # -- at the last report ------------------------------------------------------------------
    def measure(self, model: nn.Module | None) -> dict[str, float]:
        """The named costs that could be measured (a missing one is left out)."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        out: dict[str, float] = {}
        if "train_seconds" in self.names:
            out["train_seconds"] = time.perf_counter() - self.started - self.waited
        if "peak_memory_mb" in self.names:
            peak = self._peak_mb()
            if peak is not None:
                out["peak_memory_mb"] = peak
        if model is None:
            return out
        if "params" in self.names:
            out["params"] = float(sum(p.numel() for p in model.parameters() if p.requires_grad))
        if self.inputs is None or not {"flops", "latency_ms"} & set(self.names):
            return out
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                if "flops" in self.names:
                    out["flops"] = self._flops(model)
                if "latency_ms" in self.names:
                    out["latency_ms"] = self._latency_ms(model, out.get("train_seconds"))
        finally:
            model.train(was_training)
        return out

    def _call(self, model: nn.Module) -> Any:
        assert self.inputs is not None
        args, kwargs = self.inputs
        return model(*args, **kwargs)

    def _flops(self, model: nn.Module) -> float:
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            self._call(model)
        return float(counter.get_total_flops()) / self.batch

    def _latency_ms(self, model: nn.Module, trained_s: float | None) -> float:
        cuda = self.device.type == "cuda"
        for _ in range(WARMUP):
            self._call(model)
        budget = SHARE * trained_s if trained_s else float("inf")
        times: list[float] = []
        spent = 0.0
        while len(times) < RUNS and (len(times) < MIN_RUNS or spent < budget):
            if cuda:
                torch.cuda.synchronize(self.device)
            t0 = time.perf_counter()
            self._call(model)
            if cuda:
                torch.cuda.synchronize(self.device)
            took = time.perf_counter() - t0
            times.append(took)
            spent += took
        return statistics.median(times) * 1000.0

    def _reset_peak(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        self.base_kb = _status_kb("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := the current RSS
            self.hwm = True
        except OSError:
            self.hwm = False  # the reports' samples stand in

    def _peak_mb(self) -> float | None:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.base_kb is None:
            return None
        peak = _status_kb("VmHWM") if self.hwm else max(self.seen_kb, _status_kb("VmRSS") or 0)
        return None if peak is None else max(0.0, (peak - self.base_kb) / 1024.0)


def _status_kb(field: str) -> int | None:
    """A `kB` field of /proc/self/status, or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None
