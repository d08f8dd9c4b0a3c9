"""The model's output at init against the loss and the targets: shapes, range, scale, and an
output that cannot carry information. Each names the cause, not the symptom."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import torch

from sweeper.probes._context import LAYERS, Context
from sweeper.probes._finding import Finding
from sweeper.training import build_model, forward, resolve_loss

_CLASS_LOSSES = ("cross_entropy", "nll")  # out (N, C), target (N,) class indices
_ELEMENTWISE = ("mse", "l1", "bce", "bce_prob")  # out and target of one shape


@dataclass
class Outputs:
    """A fresh model's output on the first training rows, with the input of its last layer."""

    y: torch.Tensor
    out: Any
    last_input: torch.Tensor | None  # what the last Linear/Conv called received, if any
    last_layer: str


def init_outputs(ctx: Context) -> Outputs:
    """The fresh model's output on the first 512 training rows: made once per context, read by
    the output probes and init_loss."""
    if "init_outputs" not in ctx.cache:
        ctx.cache["init_outputs"] = _init_outputs(ctx, rows=512)
    return ctx.cache["init_outputs"]


@torch.no_grad()
def _init_outputs(ctx: Context, rows: int) -> Outputs:
    torch.manual_seed(ctx.seed)
    model = build_model(ctx.task, {**ctx.params, "dropout": 0.0}, ctx.device)
    model.eval()
    seen: dict[str, Any] = {}

    def record(name: str) -> Any:
        def hook(_m: torch.nn.Module, args: tuple[Any, ...], _out: Any) -> None:
            if args and isinstance(args[0], torch.Tensor):
                seen.update(layer=name, input=args[0].detach())

        return hook

    hooks = [
        m.register_forward_hook(record(n))
        for n, m in model.named_modules()
        if isinstance(m, LAYERS)
    ]
    try:
        x, y = ctx.data.train.head(rows)
        out = forward(model, x)
    finally:
        for h in hooks:
            h.remove()
    return Outputs(y, out, seen.get("input"), seen.get("layer", ""))


def _shape(t: torch.Tensor) -> str:
    return str(tuple(t.shape))


def loss_shapes(ctx: Context) -> Finding:
    """Output and target shapes agree for the loss: no silent broadcasting, the number of
    outputs matches num_classes, one output row per sample."""
    o = init_outputs(ctx)
    expected = _expected_shape(ctx, o.y)
    if not isinstance(o.out, torch.Tensor):
        return Finding("loss_shapes", "skip", "the model returns several outputs", expected)
    out, y, name = o.out, o.y, ctx.loss_name
    measured = {"output": _shape(out), "target": _shape(y)}
    if name in _CLASS_LOSSES:
        if out.ndim < 2 or out.shape[-1] == 1:
            return Finding("loss_shapes", "pass", measured, expected, "see degenerate_output")
        if out.shape[0] != y.shape[0]:
            return _fail(
                measured,
                expected,
                f"the model returns {out.shape[0]} output rows for a batch of {y.shape[0]}: a "
                "view/reshape/flatten folds the batch dimension (use x.flatten(1) or "
                "x.view(x.size(0), -1), never x.view(-1, …))",
            )
        c = ctx.num_classes
        if out.ndim == 2 and out.shape[1] != c:
            return _fail(
                measured,
                expected,
                f"the last layer has {out.shape[1]} outputs but num_classes is {c}: give it "
                f"{c} outputs (or fix num_classes)",
            )
        return Finding("loss_shapes", "pass", measured, expected)
    if name in _ELEMENTWISE and isinstance(ctx.task.loss, str):
        # sweeper's named elementwise losses reshape the output to the target's shape
        if out.numel() != y.numel():
            return _fail(
                measured,
                expected,
                f"the model gives {out.numel() // max(len(y), 1)} value(s) per sample but the "
                f"target has {y.numel() // max(len(y), 1)}: for loss {name!r} the last layer "
                "needs one output per target value",
            )
        return Finding("loss_shapes", "pass", measured, expected)
    if out.shape != y.shape and (name in _ELEMENTWISE or _broadcast_warning(ctx, out, y)):
        hint = f"output {_shape(out)} and target {_shape(y)} differ, so the loss broadcasts them"
        try:
            grid = torch.broadcast_shapes(out.shape, y.shape)
            hint += f" to {_shape(torch.empty(grid, device='meta'))}"
        except RuntimeError:
            pass
        hint += (
            " and compares every output with every target: make them equal "
            "(out.squeeze(-1), or y.view(-1, 1))"
        )
        return _fail(measured, expected, hint)
    return Finding("loss_shapes", "pass", measured, expected)


def _expected_shape(ctx: Context, y: torch.Tensor) -> str:
    n = len(y)
    if ctx.loss_name in _CLASS_LOSSES:
        return f"output ({n}, {ctx.num_classes}) for target ({n},)"
    return f"output of the target's shape {_shape(y)}"


def _broadcast_warning(ctx: Context, out: torch.Tensor, y: torch.Tensor) -> bool:
    """Whether the task's loss warns about a target size unlike the input size (PyTorch's
    mse/l1/smooth_l1 losses do when they broadcast)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            resolve_loss(ctx.task.loss, ctx.task.kind)(out, y)
        except Exception:
            return False
    return any("target size" in str(w.message) for w in caught)


def _fail(measured: Any, expected: str, hint: str) -> Finding:
    return Finding("loss_shapes", "fail", measured, expected, hint)


def output_activation_vs_loss(ctx: Context) -> Finding:
    """The model's last activation fits its loss and its targets: logits for cross_entropy and
    BCE with logits, log-probabilities for NLL, probabilities for BCELoss; no regression loss
    on a sigmoid for 0/1 labels, no softmax cross-entropy over multi-label targets, and an
    output that carries a gradient at all (an argmax in forward does not). A mismatch here is
    named as that, before output_range judges the output against the targets' range."""
    o = init_outputs(ctx)
    if isinstance(o.out, torch.Tensor) and not o.out.is_floating_point():
        return _mismatch(
            {"output dtype": str(o.out.dtype)},
            "a floating output the loss can differentiate",
            "the model returns integers (an argmax, round or comparison at the end of "
            "forward): no gradient reaches the weights; return the logits and take the argmax "
            "only when predicting",
        )
    if not isinstance(o.out, torch.Tensor):
        return Finding(_ACT, "skip", "the model returns several outputs", "—")
    cut = _gradient_cut(ctx)
    if cut is not None:
        return cut
    out, y, name = o.out.float(), o.y.float(), ctx.loss_name
    lo, hi = float(out.min()), float(out.max())
    measured = {"output min": lo, "output max": hi}
    if lo == hi:
        return Finding(_ACT, "skip", f"every output is {lo:.3g}", "see degenerate_output")
    in_unit = lo >= 0.0 and hi <= 1.0
    zeros = float((out == 0).float().mean())
    multi = _multilabel_rows(out, y)
    if name == "cross_entropy" and multi > 0:
        return _mismatch(
            {**measured, "rows with several labels": multi},
            "one class per row for a softmax cross-entropy",
            f"{multi:.0%} of the target rows hold several 1s (multi-label targets) but "
            "cross_entropy's softmax spreads one unit of probability over the classes, so "
            "labels compete; use BCE with logits (loss bce, kind multilabel) and raw logits",
        )
    if name in ("l1", "mse") and _zero_one(y):
        return _regression_loss_on_labels(name, out, measured)
    if name == "cross_entropy" and out.ndim == 2 and out.shape[1] > 1:
        expected = "raw logits (any real values; cross_entropy applies log_softmax itself)"
        sums = out.sum(dim=1)
        if in_unit and bool(((out.sum(dim=0) - 1).abs() < 1e-3).all()):
            return _mismatch(measured, expected, _OVER_BATCH.format(what="softmax"))
        if in_unit and bool(((sums - 1).abs() < 1e-3).all()):
            return _mismatch(
                measured,
                expected,
                "the outputs are already probabilities (each row sums to 1): a softmax "
                "before cross_entropy, which applies its own; remove the softmax and return "
                "raw logits",
            )
        if in_unit and zeros >= 0.2:
            return _mismatch(
                measured,
                expected,
                f"no output is negative and {zeros:.0%} are exactly 0: a ReLU on the logits, "
                "so a class can never be pushed below the others' floor; remove the ReLU "
                "and return raw logits",
            )
        if in_unit:
            what = "a sigmoid" if lo > 0 and hi < 1 else "an activation bounded to [0, 1]"
            return _mismatch(
                measured,
                expected,
                f"every output is in [0, 1]: {what} squashes the logits before "
                "cross_entropy; remove it and return raw logits",
            )
        lse = torch.logsumexp(out, dim=1)
        if hi <= 0 and bool((lse.abs() < 1e-3).all()):
            return Finding(
                _ACT,
                "warn",
                measured,
                expected,
                "the outputs are log-probabilities (log_softmax) fed to cross_entropy, which "
                "applies log_softmax again: harmless but redundant; drop the log_softmax, or "
                "use loss nll",
            )
        return Finding(_ACT, "pass", measured, expected)
    if name == "bce":
        expected = "raw logits, negative and positive (BCE with logits applies the sigmoid)"
        if in_unit and zeros < 0.2:
            return _mismatch(
                measured,
                expected,
                "every output is in [0, 1]: a sigmoid before BCE-with-logits, which applies "
                "its own (a double sigmoid: the loss cannot go below 0.31); remove the "
                "sigmoid and return raw logits",
            )
        if lo >= 0 and zeros >= 0.2:
            return _mismatch(
                measured,
                expected,
                f"no output is negative and {zeros:.0%} are exactly 0: a ReLU on the logits, "
                "so the model can never predict the negative class; remove it",
            )
        return Finding(_ACT, "pass", measured, expected)
    if name == "nll" and out.ndim == 2:
        expected = "log-probabilities (log_softmax): each row's logsumexp = 0"
        lse = torch.logsumexp(out, dim=1)
        if bool((lse.abs() < 1e-3).all()):
            return Finding(_ACT, "pass", measured, expected)
        if bool((torch.logsumexp(out, dim=0).abs() < 1e-3).all()):
            return _mismatch(measured, expected, _OVER_BATCH.format(what="log_softmax"))
        if in_unit and bool(((out.sum(dim=1) - 1).abs() < 1e-3).all()):
            hint = (
                "the outputs are probabilities (softmax), but NLL expects their log: use "
                "log_softmax instead of softmax"
            )
        else:
            hint = (
                "the outputs are raw logits, but NLL expects log-probabilities: add "
                "log_softmax at the end of the model, or use loss cross_entropy"
            )
        return _mismatch(measured, expected, hint)
    if name == "bce_prob":
        expected = "probabilities in [0, 1] (BCELoss takes probabilities)"
        if in_unit:
            return Finding(_ACT, "pass", measured, expected)
        return _mismatch(
            measured,
            expected,
            "the outputs are raw logits outside [0, 1], but BCELoss expects probabilities: "
            "use BCEWithLogitsLoss (loss bce) on the raw outputs; it is also more stable "
            "than a sigmoid followed by BCELoss",
        )
    if name == "custom" and ctx.kind == "multiclass":
        return _custom_class_loss(ctx, out, o.y, measured)
    return Finding(_ACT, "skip", f"loss {name!r}: judged by output_range", "—")


def output_range(ctx: Context) -> Finding:
    """A regression's output can cover its targets' range: not clipped at 0 (a ReLU) when
    targets are negative, not squashed into (0, 1) (a sigmoid) when they lie outside it. The
    output's fit to the loss is output_activation_vs_loss's."""
    if ctx.kind != "regression" or ctx.loss_name not in ("mse", "l1", "custom"):
        return Finding("output_range", "skip", "see output_activation_vs_loss", "—")
    o = init_outputs(ctx)
    if not isinstance(o.out, torch.Tensor) or not o.out.is_floating_point():
        return Finding("output_range", "skip", "the model returns several outputs", "—")
    out, y = o.out.float(), o.y.float()
    if _zero_one(y):
        return Finding("output_range", "skip", "0/1 targets: see output_activation_vs_loss", "—")
    lo, hi = float(out.min()), float(out.max())
    measured = {"output min": lo, "output max": hi}
    if lo == hi:
        return Finding("output_range", "skip", f"every output is {lo:.3g}", "see degenerate_output")
    in_unit = lo >= 0.0 and hi <= 1.0
    zeros = float((out == 0).float().mean())
    expected = "outputs able to cover the targets' range"
    below = float((y < 0).float().mean())
    if lo >= 0 and zeros >= 0.2 and below > 0.05:
        return _range_fail(
            measured,
            expected,
            f"the output is clipped at 0 ({zeros:.0%} of outputs exactly 0, as after a "
            f"ReLU) while {below:.0%} of the targets are negative: remove the activation "
            "on the output layer",
        )
    outside = float(((y < 0) | (y > 1)).float().mean())
    if in_unit and 0 < lo and hi < 1 and outside > 0.05:
        return _range_fail(
            measured,
            expected,
            f"every output is in (0, 1), as after a sigmoid, while {outside:.0%} of the "
            "targets lie outside it: remove the sigmoid on the output layer (or scale "
            "the targets into (0, 1))",
        )
    return Finding("output_range", "pass", measured, expected)


def _custom_class_loss(ctx: Context, out: torch.Tensor, y: torch.Tensor, measured: Any) -> Finding:
    """A custom classification loss judged by what it does, not its name: when the model
    already outputs probabilities, a confidently wrong prediction must cost the loss more
    than a uniform guess would (log-loss does; MSE on probabilities, or cross_entropy
    applying a second softmax, do not: they saturate and learn slowly)."""
    c = ctx.num_classes
    expected = "a confident mistake costs more than ln C over a confident right answer"
    dims = [d for d in range(1, out.ndim) if out.shape[d] == c]
    if not dims or y.is_floating_point():
        return Finding(_ACT, "skip", "custom loss: no class dimension found", "—")
    dim = dims[-1] if out.ndim == y.ndim + 1 and dims[-1] == out.ndim - 1 else dims[0]
    probs = bool(((out >= 0) & (out <= 1)).all()) and bool(
        ((out.sum(dim=dim) - 1).abs() < 1e-3).all()
    )
    if not probs:
        return Finding(_ACT, "pass", measured, "logits (the loss's own business)")
    labels = y.long().clamp_min(0)
    right = torch.nn.functional.one_hot(labels, c).float().movedim(-1, dim)
    wrong = torch.nn.functional.one_hot((labels + 1) % c, c).float().movedim(-1, dim)
    loss = resolve_loss(ctx.task.loss, ctx.task.kind)
    with torch.no_grad():
        cost = float(loss(wrong, y)) - float(loss(right, y))
    m = {**measured, "confident mistake costs": cost}
    if math.isfinite(cost) and cost < math.log(c):
        return _mismatch(
            m,
            expected,
            f"the model outputs probabilities (a softmax) and the loss charges a confident "
            f"mistake only {cost:.3g} more than a right answer (ln C = {math.log(c):.3g}): a "
            "softmax before a loss that applies its own (cross_entropy), or MSE/L1 on "
            "softmax outputs; return raw logits and use cross_entropy",
        )
    return Finding(_ACT, "pass", m, expected)


_OVER_BATCH = (
    "the {what} runs over the batch dimension (each column, not each row, sums to one): "
    "samples are normalized against each other; use {what}(dim=1) (or dim=-1)"
)


def _range_fail(measured: Any, expected: str, hint: str) -> Finding:
    return Finding("output_range", "fail", measured, expected, hint)


_ACT = "output_activation_vs_loss"


def _mismatch(
    measured: Any, expected: str, hint: str, verdict: Literal["fail", "warn"] = "fail"
) -> Finding:
    return Finding(_ACT, verdict, measured, expected, hint)


def _zero_one(y: torch.Tensor) -> bool:
    """Whether every target is 0 or 1 (binary labels), with both present."""
    if y.numel() == 0:
        return False
    return bool(((y == 0) | (y == 1)).all()) and y.unique().numel() == 2


def _multilabel_rows(out: torch.Tensor, y: torch.Tensor) -> float:
    """The share of target rows holding several 1s, for 0/1 targets shaped like the output."""
    if y.ndim != 2 or y.shape != out.shape or y.shape[1] < 2 or not _zero_one(y):
        return 0.0
    return float((y.sum(dim=1) >= 2).float().mean())


def _regression_loss_on_labels(name: str, out: torch.Tensor, measured: Any) -> Finding:
    """MAE/MSE on 0/1 labels: on a sigmoid, a confident mistake gets almost no gradient."""
    expected = "a log-loss (BCE with logits) for 0/1 labels"
    lo, hi = float(out.min()), float(out.max())
    squashed = 0 < lo and hi < 1
    what = "MAE (l1)" if name == "l1" else "MSE"
    if squashed:
        return _mismatch(
            measured,
            expected,
            f"{what} on a sigmoid output for 0/1 labels: where the sigmoid saturates on the "
            "wrong side, its gradient vanishes and a confident mistake is barely corrected; "
            "return raw logits and use loss bce (BCE with logits)",
            "fail" if name == "l1" else "warn",
        )
    return _mismatch(
        measured,
        expected,
        f"{what} on 0/1 labels: a regression loss for a classification; use loss bce "
        "(BCE with logits) on raw logits, and kind binary",
        "warn",
    )


def _gradient_cut(ctx: Context) -> Finding | None:
    """A fresh model's output, in train mode with gradients on, must depend on its weights:
    an argmax, round or .detach() in forward cuts every gradient."""
    torch.manual_seed(ctx.seed)
    model = build_model(ctx.task, {**ctx.params, "dropout": 0.0}, ctx.device)
    if not any(p.requires_grad for p in model.parameters()):
        return None
    x, _ = ctx.data.train.head(8)
    with torch.enable_grad():
        out = forward(model, x)
    if isinstance(out, torch.Tensor) and out.is_floating_point() and not out.requires_grad:
        return _mismatch(
            {"output requires grad": False},
            "an output that depends on the trainable weights",
            "the model's output carries no gradient: an argmax, round, comparison, .detach() "
            "or .data at the end of forward (or torch.no_grad around it) cuts it, so no "
            "weight can learn; return the logits and take the argmax only when predicting",
        )
    return None


def target_scale(ctx: Context) -> Finding:
    """Regression targets on a scale the output can reach: mean and std of y against the
    output's scale at init (about 1 for a standard init)."""
    if ctx.kind != "regression":
        return Finding("target_scale", "skip", "not a regression", "—")
    o = init_outputs(ctx)
    _, y = ctx.data.train.head(4096)
    y = y.double()
    mean, std = float(y.mean()), float(y.std()) if y.numel() > 1 else 0.0
    out_rms = float(o.out.double().pow(2).mean().sqrt()) if isinstance(o.out, torch.Tensor) else 0.0
    scale = max(abs(mean), std)
    ratio = scale / max(out_rms, 1.0)
    limit = ctx.settings.target_scale_max
    measured = {"target mean": mean, "target std": std, "output rms at init": out_rms}
    expected = f"target scale (max of |mean|, std) ≤ {limit:g}x the output's (at least 1)"
    if ratio > limit:
        return Finding(
            "target_scale",
            "fail",
            measured,
            expected,
            f"the targets are not standardized (mean {mean:.3g}, std {std:.3g}) while the "
            f"output starts near {out_rms:.2g}: the loss is dominated by the scale and the "
            "model spends its training reaching it; standardize y with the train split's "
            "mean and std (and undo it on predictions)",
        )
    values = y.unique()
    if y.ndim == 1 and 3 <= len(values) <= 20 and bool((values == values.round()).all()):
        return Finding(
            "target_scale",
            "warn",
            {**measured, "distinct targets": len(values)},
            expected,
            f"the targets are {len(values)} distinct whole numbers ({int(values.min())} to "
            f"{int(values.max())}): if they are class ids, use kind='multiclass' with "
            "cross_entropy (a regression loss takes 9 as nearer to 8 than to 0); counts or "
            "ratings are fine as they are",
        )
    return Finding("target_scale", "pass", measured, expected)


def degenerate_output(ctx: Context) -> Finding:
    """An output that cannot carry information: one unit under a softmax loss, or the same
    output for every sample at init although the inputs differ."""
    o = init_outputs(ctx)
    name = ctx.loss_name
    expected = "varying outputs; C ≥ 2 output units for a softmax loss"
    if not isinstance(o.out, torch.Tensor):
        return Finding("degenerate_output", "skip", "the model returns several outputs", "—")
    out = o.out.float()
    softmax_loss = name in _CLASS_LOSSES or (name == "custom" and ctx.kind == "multiclass")
    if softmax_loss and (out.ndim < 2 or out.shape[-1] == 1):
        return Finding(
            "degenerate_output",
            "fail",
            {"output units": 1},
            expected,
            f"one output unit with a softmax loss ({name}): the softmax of one value is "
            "always 1, so the loss is constant and nothing trains; give the last layer "
            f"{max(ctx.num_classes, 2)} outputs, or keep one logit and use loss bce",
        )
    if len(out) < 2:
        return Finding("degenerate_output", "skip", "fewer than 2 rows", expected)
    flat = out.reshape(len(out), -1)
    spread = float((flat.max(0).values - flat.min(0).values).max())
    size = float(flat.abs().max())
    if spread > ctx.settings.constant_output_tol * max(size, 1.0):
        return Finding("degenerate_output", "pass", {"output spread": spread}, expected)
    if o.last_input is not None and len(o.last_input) == len(out):
        inner = o.last_input.float().reshape(len(out), -1)
        if float((inner.max(0).values - inner.min(0).values).max()) > 1e-6:
            # the last layer's input varies: a zero-initialised head, a deliberate choice
            return Finding(
                "degenerate_output",
                "pass",
                {"output spread": spread},
                expected,
                f"the output starts constant because {o.last_layer} starts at zero; its "
                "input varies, so it will learn",
            )
    return Finding(
        "degenerate_output",
        "fail",
        {"output spread": spread, "output": float(flat[0].mean())},
        expected,
        "the model gives the same output for every sample at init: the input never reaches "
        "the output (all-zero weights, ReLUs killed by a large negative bias, or the input "
        "multiplied by 0 somewhere); use a random init and check forward",
    )
