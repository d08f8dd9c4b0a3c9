"""Leaks through the model in sequence tasks: the future reaching an autoregressive model's
earlier positions (a missing or wrong causal mask), and padding reaching the real positions
of a padded batch (an attention mask that is not applied).

Both compare two eval-mode forwards of a fresh model that differ only where the model must
not look (the tokens after a position; the padded positions' tokens), and name the first
layer where the difference appears at the positions that must not change: the innermost
module whose input there is unchanged but whose output is not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from sweeper.probes._context import Context
from sweeper.probes._finding import Finding
from sweeper.training import Inputs, forward

ROWS = 4  # sequences compared: a few are enough, the difference is exact or absent


def _ids(x: Inputs) -> tuple[torch.Tensor | None, str | None]:
    """The token ids of an input: a lone integer (batch, time) tensor, or a dict's
    `input_ids` (the Hugging Face convention); its key in the dict (None for a tensor)."""
    if isinstance(x, torch.Tensor):
        ok = x.ndim == 2 and not x.is_floating_point() and x.dtype != torch.bool
        return (x, None) if ok else (None, None)
    if isinstance(x, dict) and isinstance(x.get("input_ids"), torch.Tensor):
        ids = x["input_ids"]
        return (ids, "input_ids") if ids.ndim == 2 else (None, None)
    return None, None


def _with_ids(x: Inputs, key: str | None, ids: torch.Tensor, **more: torch.Tensor) -> Inputs:
    if key is None:
        return ids
    assert isinstance(x, dict)
    return {**x, key: ids, **more}


def _positions(t: Any, batch: int, length: int) -> torch.Tensor | None:
    """`t` as (batch, time, ...) when one of its leading dims is the sequence, else None."""
    if not isinstance(t, torch.Tensor) or t.ndim < 2 or not t.is_floating_point():
        return None
    if t.shape[0] == batch and t.shape[1] == length:
        return t
    if t.shape[0] == length and t.shape[1] == batch:  # seq-first layers (nn.Transformer)
        return t.transpose(0, 1)
    return None


def _first(out: Any) -> Any:
    if isinstance(out, (tuple, list)):
        return out[0] if out else None
    if isinstance(out, dict):
        return next(iter(out.values()), None)
    logits = getattr(out, "logits", None)
    return logits if logits is not None else getattr(out, "last_hidden_state", out)


class _Trace:
    """Each module's first input and output at the guarded positions, in the order the
    modules finish, for one forward."""

    def __init__(self, model: torch.nn.Module, batch: int, length: int, keep: Any) -> None:
        self.seen: list[tuple[str, torch.Tensor | None, torch.Tensor | None]] = []
        self.hooks = []
        for name, module in model.named_modules():
            if name:
                hook = self._hook(name, batch, length, keep)
                self.hooks.append(module.register_forward_hook(hook))

    def _hook(self, name: str, batch: int, length: int, keep: Any) -> Callable[..., None]:
        def hook(_m: Any, args: Any, out: Any) -> None:
            a = _positions(args[0], batch, length) if args else None
            o = _positions(_first(out), batch, length)
            if o is not None:
                self.seen.append((name, None if a is None else keep(a), keep(o)))

        return hook

    def remove(self) -> None:
        for h in self.hooks:
            h.remove()


def _differs(a: torch.Tensor, b: torch.Tensor, tol: float) -> bool:
    if a.shape != b.shape:
        return True
    scale = max(float(a.abs().max()), 1.0) if a.numel() else 1.0
    return bool((a.float() - b.float()).abs().max() > tol * scale)


def _source(one: _Trace, two: _Trace, tol: float) -> str:
    """The first module (in the order modules finish) whose guarded input is the same in
    both forwards and whose guarded output is not: where the leak enters."""
    for (name, a1, o1), (_, a2, o2) in zip(one.seen, two.seen, strict=False):
        if o1 is None or o2 is None or not _differs(o1, o2, tol):
            continue
        if a1 is not None and a2 is not None and not _differs(a1, a2, tol):
            return name
    return ""


def _compare(
    model: torch.nn.Module, x1: Inputs, x2: Inputs, keep: Any, per_sample: bool = False
) -> tuple[float, float, str]:
    """(leak, scale, layer): the largest change at the guarded positions between the two
    forwards, the output's size there, and the module where the change enters. With
    `per_sample`, an output of one row per sequence (a classifier's) is guarded whole."""
    ids, _ = _ids(x1)
    assert ids is not None
    batch, length = ids.shape
    outs, traces = [], []
    with torch.no_grad():
        for x in (x1, x2):
            trace = _Trace(model, batch, length, keep)
            try:
                outs.append(_first(forward(model, x)))
            finally:
                trace.remove()
            traces.append(trace)
    p1, p2 = (_positions(o, batch, length) for o in outs)
    if p1 is not None and p2 is not None:
        g1, g2 = keep(p1).float(), keep(p2).float()
    elif per_sample and all(
        isinstance(o, torch.Tensor) and o.ndim >= 1 and len(o) == batch for o in outs
    ):
        g1, g2 = outs[0].float(), outs[1].float()
    else:
        return -1.0, 0.0, ""
    if not g1.numel():
        return 0.0, 0.0, ""
    leak = float((g1 - g2).abs().max())
    return leak, float(g1.abs().max()), _source(traces[0], traces[1], 1e-5)


def _has_attention(model: torch.nn.Module) -> bool:
    return any(
        isinstance(m, torch.nn.MultiheadAttention) or "attention" in type(m).__name__.lower()
        for m in model.modules()
    )


def _vocab(ctx: Context, ids: torch.Tensor) -> int:
    return max(int(ctx.num_classes or 0), int(ids.max()) + 1, 2)


def _other_tokens(ids: torch.Tensor, vocab: int, gen: torch.Generator) -> torch.Tensor:
    """Every token replaced by a different one of the vocabulary."""
    shift = torch.randint(1, vocab, ids.shape, generator=gen).to(ids.device)
    return (ids + shift) % vocab


def causal_mask(ctx: Context) -> Finding:
    """An autoregressive model (targets are the inputs shifted by one, or the inputs
    themselves for a model that computes its own loss) must not see the future: in eval mode,
    the outputs up to position t stay the same when the tokens after t change. Fails naming
    the first layer where the future enters."""
    expected = "outputs at positions ≤ t unchanged when the tokens after t change (eval mode)"
    x, y = ctx.data.train.head(ROWS)
    ids, key = _ids(x)
    if ids is None or ids.shape[1] < 4:
        return Finding("causal_mask", "skip", "inputs are not token sequences", expected)
    shifted = y.shape == ids.shape and bool((y[:, :-1] == ids[:, 1:]).float().mean() > 0.9)
    own_loss = ctx.loss_name == "model" and y.shape == ids.shape and bool((y == ids).all())
    if not (shifted or own_loss):
        return Finding(
            "causal_mask",
            "skip",
            "targets are not the inputs shifted (not autoregressive)",
            expected,
        )
    model = ctx.fresh_model()
    model.eval()
    t = ids.shape[1] // 2
    gen = torch.Generator().manual_seed(ctx.seed)
    later = ids.clone()
    later[:, t + 1 :] = _other_tokens(ids[:, t + 1 :], _vocab(ctx, ids), gen)
    leak, scale, layer = _compare(model, x, _with_ids(x, key, later), lambda a: a[:, : t + 1])
    if leak < 0:
        return Finding("causal_mask", "skip", "no per-position output", expected)
    measured = f"max |Δout[≤{t}]| = {leak:.3g}"
    if leak > ctx.settings.sequence_leak_tol * max(scale, 1e-6):
        where = f"; the future enters at `{layer}`" if layer else ""
        return Finding(
            "causal_mask",
            "fail",
            measured,
            expected,
            "the model sees the future: its output at position t changes with the tokens "
            f"after t, so it learns to copy the next token instead of predicting it{where}. "
            "Give the attention a causal mask (is_causal=True in scaled_dot_product_attention, "
            "a lower-triangular mask, mask= in nn.TransformerDecoder/Encoder layers), and "
            "keep convolutions and RNNs one-directional",
            details={"layer": layer, "position": t},
        )
    return Finding("causal_mask", "pass", measured, expected)


def padding_mask(ctx: Context) -> Finding:
    """A padded batch (a dict input with `attention_mask`): the outputs at the real
    positions must not depend on the padding's tokens. The last quarter of each sequence is
    marked as padding in both forwards, with different tokens there."""
    expected = "outputs at real positions unchanged when the padded tokens change (eval mode)"
    x, _ = ctx.data.train.head(ROWS)
    ids, key = _ids(x)
    mask = x.get("attention_mask") if isinstance(x, dict) else None
    if ids is None or key is None or not isinstance(mask, torch.Tensor) or ids.shape[1] < 4:
        return Finding("padding_mask", "skip", "no attention_mask in the inputs", expected)
    if mask.shape != ids.shape:
        return Finding("padding_mask", "skip", "attention_mask is not per token", expected)
    length = ids.shape[1]
    real = length - max(1, length // 4)
    padded = mask.clone()
    padded[:, real:] = 0
    real_rows = padded[:, :real].bool()
    gen = torch.Generator().manual_seed(ctx.seed)
    other = ids.clone()
    other[:, real:] = _other_tokens(ids[:, real:], _vocab(ctx, ids), gen)
    model = ctx.fresh_model()
    model.eval()
    if not _has_attention(model):
        # an RNN or a convolution reads the padding by design (masked pooling after it is a
        # choice, not a mask that failed): only attention layers are given the mask to apply
        return Finding("padding_mask", "skip", "no attention layer", expected)

    def keep(a: torch.Tensor) -> torch.Tensor:
        return a[:, :real][real_rows]

    leak, scale, layer = _compare(
        model,
        _with_ids(x, key, ids, attention_mask=padded),
        _with_ids(x, key, other, attention_mask=padded),
        keep,
        per_sample=True,
    )
    if leak < 0:
        return Finding("padding_mask", "skip", "no output per sequence or position", expected)
    measured = f"max |Δout[real]| = {leak:.3g}"
    if leak > ctx.settings.sequence_leak_tol * max(scale, 1e-6):
        where = f"; the padding enters at `{layer}`" if layer else ""
        return Finding(
            "padding_mask",
            "fail",
            measured,
            expected,
            "the padding's tokens change the outputs at real positions: the attention_mask "
            f"is not applied{where}. Pass it on to every attention layer (attention_mask= "
            "for Hugging Face models, src_key_padding_mask= for nn.TransformerEncoder, "
            "masked_fill of the scores with -inf where the mask is 0), and pool over real "
            "tokens only",
            details={"layer": layer},
        )
    return Finding("padding_mask", "pass", measured, expected)
