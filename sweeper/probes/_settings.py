"""Every probe threshold, with its default and its meaning. No torch: the study definition's
`probes:` section is validated against these fields, and the README's reference lists them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# The study gate's probes, in the order they run: causes before their consequences (the data,
# then the model's wiring at init, then what training shows), so the first failure is the root
# cause. probes/_gate.py maps each name to its function; `probes: disable:` is checked here.
GATE_PROBES = (
    "data_finite",
    "labels_in_range",
    "data_scale",
    "constant_features",
    "class_balance",
    "duplicate_samples",
    "train_val_overlap",
    "label_leakage",
    "data_order",
    "loss_shapes",
    "weight_init",
    "gradient_depth",
    "degenerate_output",
    "output_activation_vs_loss",
    "output_range",
    "target_scale",
    "gradient_flow",
    "eval_determinism",
    "batch_independence",
    "causal_mask",
    "padding_mask",
    "gradcheck",
    "init_loss",
    "overfit_tiny",
    "zero_input_baseline",
    "short_fit_vs_baseline",
    "label_noise",
    "lr_range_test",
)

# The per-trial monitor's checks (probes/_trial.py), each with what it stops or warns about and
# the settings it judges by; the README's per-trial table lists the same names.
TRIAL_CHECKS: dict[str, str] = {
    "stale_optimizer": "fails: the optimizer holds none of the watched model's parameters",
    "eval_mode_training": "fails: optimizer steps with every Dropout/BatchNorm in eval mode",
    "grad_not_zeroed": "fails: a step applies gradients summed over steps (grad_zeroed_cosine)",
    "weights_unchanged": "fails: three sampled steps in a row change no weight while lr > 0",
    "update_ratio": "fails: one sampled step above update_ratio_spike, or a group's |ΔW|/|W| "
    "median over the first update_ratio_steps below a hundredth of update_ratio_min in every "
    "group; warns: that median off [update_ratio_min, update_ratio_max]",
    "nonfinite_loss": "fails: a loss handed to trial.step or reported is nan/inf",
    "loss_growth": "fails: the loss grows past loss_growth x its start or the loss at init",
    "nonfinite_grad": "fails: a gradient is nan/inf at a sampled step (the parameter named)",
    "nonfinite_input": "fails: the batch a nan/inf gradient came from holds nan/inf inputs",
    "nonfinite_activation": "fails: a module's output is nan/inf (the first such layer named)",
    "activation_explosion": "fails: a module's output RMS passes activation_growth x its start "
    "(the first such layer named)",
    "dying_units": "warns: ReLU units dead for a whole batch during training (dead_relu_max)",
    "saturating_units": "warns: tanh/sigmoid units saturated during training (saturated_max)",
    "loss_oscillation": "warns: the reported training loss rises by loss_oscillation twice",
    "memory_growth": "warns: the process's memory grows in each of 3 epochs after the first "
    "(20 MB and 2% at least each): a running total of loss tensors keeps every graph",
    "eval_stochastic": "fails: two eval-mode passes over the first evaluated batch differ; "
    "warns: a forward without gradients runs with Dropout/BatchNorm in train mode",
    "eval_before_train": "warns: the model ran in eval mode before any train-mode forward, "
    "which then rewrote a buffer from scratch (an old-style spectral_norm's vectors)",
    "train_not_called": "fails: the model's own train() freezes layers or sets eval mode, "
    "and the loop reached its first step without calling it",
    "frozen_updated": "fails: an optimizer step changed a parameter with requires_grad=False",
    "unheld_params": "warns: parameters get gradients that the optimizer does not hold "
    "(a head replaced or layers unfrozen after the optimizer was built)",
    "autocast_coverage": "warns: matmul layers ran in float32 in a forward whose others ran "
    "under autocast in half precision",
    "lr_schedule": "fails: the lr is 0 (a millionth of its peak or less) in every group "
    "before the last epoch",
    "at_chance": "fails: the reported accuracy and loss at the trivial baseline's and not "
    "improving after chance_after of the epochs, before the last (chance_margin)",
}


class Thresholds(BaseModel):
    """The numbers the probes judge by. Each can be set per study under `probes:`."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    # data
    data_scale_warn: float = Field(
        default=3.0,
        gt=0,
        description="median absolute mean or std of the input features above this warns",
    )
    data_scale_fail: float = Field(
        default=20.0,
        gt=0,
        description="median absolute mean or std of the input features above this fails",
    )
    feature_spread_warn: float = Field(
        default=100.0, gt=1, description="largest/smallest feature std above this warns"
    )
    feature_spread_fail: float = Field(
        default=1e4, gt=1, description="largest/smallest feature std above this fails"
    )
    constant_features_warn: float = Field(
        default=0.1, ge=0, le=1, description="share of constant input features above this warns"
    )
    class_balance_warn: float = Field(
        default=0.5, ge=0, le=1, description="class balance (e^H-1)/(C-1) below this warns"
    )
    overlap_warn: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="share of validation rows also in train above this warns",
    )
    overlap_fail: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="share of validation rows also in train above this fails",
    )
    duplicate_share_min: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="share of distinct rows among the first 512 training rows below which "
        "the loader repeats itself (fails)",
    )
    leak_accuracy: float = Field(
        default=0.995,
        gt=0.5,
        le=1,
        description="one input feature predicting the class this well, in train and "
        "validation, is the label leaking in (fails)",
    )
    leak_correlation: float = Field(
        default=0.999,
        gt=0.5,
        le=1,
        description="regression: one input feature correlating with the target this well is "
        "a leak (fails)",
    )
    # outputs, targets and the loss
    target_scale_max: float = Field(
        default=30.0,
        gt=1,
        description="regression: target scale over the output's at init above this fails",
    )
    constant_output_tol: float = Field(
        default=1e-6,
        ge=0,
        description="output spread over a batch at init, over its size: at or below, constant",
    )
    # the model at init
    max_layer_gain: float = Field(
        default=4.0,
        gt=1,
        description="a layer's output std over its input's RMS at init above this fails",
    )
    dead_relu_max: float = Field(
        default=0.5, gt=0, le=1, description="share of dead ReLU units at init above this fails"
    )
    gradient_ratio_max: float = Field(
        default=1e3,
        gt=1,
        description="first/last layer output-gradient RMS ratio beyond this, either way",
    )
    init_loss_tolerance: float = Field(
        default=0.5,
        gt=0,
        description="loss at init within expected x (1 ± this) passes, outside warns",
    )
    init_loss_fail_ratio: float = Field(
        default=3.0, gt=1, description="loss at init above expected x this fails"
    )
    batch_independence_tol: float = Field(
        default=1e-4,
        ge=0,
        description="change of out[0] or out[-1] when the other rows change, over the output size",
    )
    eval_determinism_tol: float = Field(
        default=1e-5, ge=0, description="difference between two eval-mode passes above this fails"
    )
    # short fits
    overfit_samples: int = Field(
        default=16, ge=2, le=256, description="rows the tiny fit memorises"
    )
    overfit_steps: int = Field(
        default=150,
        ge=10,
        description="most full-batch Adam steps of the tiny fit (it stops at the goal or a "
        "plateau; the zero-input fit takes as many)",
    )
    overfit_lr: float = Field(default=3e-3, gt=0, description="the tiny fit's Adam learning rate")
    overfit_min_accuracy: float = Field(
        default=0.95, gt=0, le=1, description="train accuracy the tiny fit must reach"
    )
    overfit_regression_ratio: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="regression: the tiny fit's final loss over its first must fall to this",
    )
    baseline_min_ratio: float = Field(
        default=1.5,
        gt=1,
        description="zero-input loss over real-input loss must reach this (or the gap below)",
    )
    baseline_min_gap: float = Field(
        default=0.1, gt=0, description="zero-input loss minus real-input loss that also passes"
    )
    short_fit_min_steps: int = Field(
        default=80,
        ge=1,
        description="optimizer steps of the short fit on the full train split (reference "
        "params, batch ≤ 128)",
    )
    short_fit_margin: float = Field(
        default=0.05,
        ge=0,
        lt=1,
        description="accuracy the short fit must beat the majority class by (at least)",
    )
    label_noise_gap: float = Field(
        default=0.15,
        gt=0,
        lt=1,
        description="training labels agreeing this much less than validation labels with the "
        "short fit's confident predictions are noisy (fails)",
    )
    probe_epoch_share: float = Field(
        default=0.4,
        gt=0,
        le=4,
        description="the most of one epoch's training rows the short fit and the lr range "
        "test each go through: on a large split their batch shrinks (never below 16 rows, "
        "never above the reference batch) so the gate costs a bounded share of the user's epochs",
    )
    lr_range_steps: int = Field(
        default=60,
        ge=10,
        description="steps of the learning-rate range test (1e-6 to 10: 1.31x the lr a step)",
    )
    lr_cap_factor: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="the search's lr stays below this x the lr where the range test diverges",
    )
    sequence_leak_tol: float = Field(
        default=1e-5,
        gt=0,
        description="causal_mask / padding_mask: the largest change of the outputs that must "
        "not change (positions ≤ t; real positions), over their largest magnitude, above "
        "which the future or the padding leaks in (a mask is exact: a masked model gives 0)",
    )
    probe_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="seconds one gate probe may run before it is stopped and named (a forward "
        "that never returns)",
    )
    watchdog_s: float | None = Field(
        default=None,
        gt=0,
        description="seconds of silence (no optimizer step, forward of the watched model, "
        "trial.report or gate probe) after which a trial or the gate is ended as hung, its "
        "threads' stacks taken and the user's line named; unset: derived per run as "
        "watchdog_factor x the longest silence measured so far, at least watchdog_floor_s",
    )
    watchdog_floor_s: float = Field(
        default=60.0,
        gt=0,
        description="the least silence the watchdog allows before it ends work as hung "
        "(also the bound before any step of the work was measured)",
    )
    watchdog_factor: float = Field(
        default=20.0,
        ge=2,
        description="the watchdog's bound as a multiple of the longest silence measured in "
        "the same work (a slow step, an evaluation)",
    )
    # during trials
    loss_growth: float = Field(
        default=2.0,
        gt=1,
        description="a trial whose smoothed loss grows past this x its start diverges (a "
        "reported loss: this x the loss at init; an own fit's loss: 10x)",
    )
    trial_window: int = Field(
        default=200,
        ge=0,
        description="optimizer steps at a trial's start checked every trial_every_early steps",
    )
    trial_every_early: int = Field(
        default=10, ge=1, description="steps between checks within trial_window"
    )
    trial_every: int = Field(
        default=50,
        ge=1,
        description="steps between checks after trial_window, to the trial's last step",
    )
    update_ratio_min: float = Field(
        default=1e-4,
        gt=0,
        description="weights' change per step over their size: the median over the first "
        "update_ratio_steps steps below this in every parameter group warns (lr too low), "
        "below a hundredth of it fails",
    )
    update_ratio_max: float = Field(
        default=0.1,
        gt=0,
        description="that median above this in any parameter group warns (lr on the high side)",
    )
    update_ratio_spike: float = Field(
        default=1.0,
        gt=0,
        description="one sampled step changing a group's weights by more than this x their "
        "size fails, at any step (saturated units later hide a too-high lr)",
    )
    update_ratio_steps: int = Field(
        default=20, ge=1, description="first optimizer steps whose update ratio is judged"
    )
    grad_zeroed_cosine: float = Field(
        default=0.99,
        gt=0,
        le=1,
        description="cosine between the gradient a step applies and the step's own gradient "
        "below this at two sampled steps in a row: zero_grad() forgotten",
    )
    activation_growth: float = Field(
        default=1e3,
        gt=1,
        description="a layer's output RMS above this x its RMS at the trial's start (at least "
        "1) explodes (fails, naming the first such layer)",
    )
    saturated_max: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="share of tanh/sigmoid units saturated for a whole batch during training "
        "above this (and 0.25 above the start) warns; dead ReLUs use dead_relu_max",
    )
    loss_oscillation: float = Field(
        default=0.2,
        gt=0,
        description="the reported training loss rising by more than this share from one epoch "
        "to the next, in two epochs of a trial, oscillates (warns)",
    )
    chance_margin: float = Field(
        default=0.02,
        ge=0,
        lt=1,
        description="a reported accuracy within this of the majority-class share and a loss "
        "within this share of the prior's, neither better than the epoch before by as much, "
        "are at chance",
    )
    chance_after: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="share of a trial's epochs (and at least 2) after which a trial still at "
        "chance is stopped",
    )


class Settings(Thresholds):
    """The thresholds plus the probes a study turns off."""

    disabled: tuple[str, ...] = ()

    @classmethod
    def from_spec(cls, spec: Any) -> Settings:
        """From a definition's `probes:` section (None: every default)."""
        if spec is None:
            return cls()
        values = {name: getattr(spec, name) for name in Thresholds.model_fields}
        return cls(**values, disabled=tuple(spec.disable))


def reference() -> list[tuple[str, Any, str]]:
    """(name, default, meaning) of every threshold, for the README and `sweeper probe --help`."""
    return [(n, f.default, f.description or "") for n, f in Thresholds.model_fields.items()]
