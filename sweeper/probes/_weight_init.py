"""The model's own init, as build_model made it: does the signal keep its scale through it?"""

from __future__ import annotations

from sweeper.probes._activations import init_label, judge_activations, record_activations
from sweeper.probes._context import Context
from sweeper.probes._finding import Finding
from sweeper.probes._init_loss import output_scale


def weight_init(ctx: Context, rows: int = 256) -> Finding:
    """Constant hidden weights, mostly dead ReLUs, or a layer whose weights are too large for
    its fan-in (output std > 4x input std; N(0, 1) weights give about sqrt(fan_in)) under the
    reference init, which is the model as built unless the search fixes a scheme."""
    init = str(ctx.params.get("init", "none"))
    model, rec = record_activations(ctx, {**ctx.params, "dropout": 0.0}, rows)
    label = init_label(init)
    s = ctx.settings
    expected = (
        f"varied weights, ≤ {s.dead_relu_max:.0%} dead ReLU units, "
        f"each layer's gain ≤ {s.max_layer_gain:g}"
    )
    gains = {n: round(g, 3) for n, g in rec.gains.items()}
    details = {"std": {n: round(s, 4) for n, s in rec.stds.items()}, "gain": gains}
    failed = [
        f
        for f in judge_activations(model, rec, init, "", dead_max=s.dead_relu_max)
        if f.verdict == "fail"
    ]
    if failed:
        f = failed[0]
        return Finding("weight_init", "fail", f.measured, expected, f.hint, details=details)
    big = {n: g for n, g in gains.items() if g > s.max_layer_gain}
    if big:
        name, gain = max(big.items(), key=lambda kv: kv[1])
        scale = output_scale(ctx)
        if scale is not None and scale <= s.init_loss_fail_ratio:
            # T5 scales the decoder output by 1/sqrt(d) before a head of unit-variance
            # weights: a large gain the model's own code compensates
            return Finding(
                "weight_init",
                "pass",
                big,
                expected,
                f"layer {name} multiplies the signal's std by {gain:.3g}, but the loss at "
                f"init is {scale:.2g}x the expected: the model compensates (a scaled input)",
                details=details,
            )
        return Finding(
            "weight_init",
            "fail",
            big,
            expected,
            f"{label} makes layer {name} multiply the signal's std by {gain:.3g}: its weights "
            "are far too large for its fan-in (N(0, 1) weights?); scale them by "
            "1/sqrt(fan_in) (kaiming/xavier), or search an init scheme",
            details=details,
        )
    return Finding(
        "weight_init",
        "pass",
        {"max gain": max(gains.values(), default=0)},
        expected,
        details=details,
    )
