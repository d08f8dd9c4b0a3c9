"""A trial check's fix in the words of the way the trial trains. sweeper's loop and a user's own
`fit` write the loop themselves, so a check says which call to add or move; under Lightning or
the Hugging Face Trainer the framework makes those calls, and the fix lies in the hooks and
arguments the user does write (`training_step`, `configure_optimizers`, `TrainingArguments`).
The integrations' callbacks set the way; a check whose fix names loop code asks `fix(...)`."""

from __future__ import annotations

WAYS = ("sweeper", "fit", "lightning", "transformers")

_FIXES: dict[str, dict[str, str]] = {
    "lightning": {
        "weights_unchanged": "Lightning calls backward, step and zero_grad itself, so look for "
        "a training_step that returns a detached loss (loss.detach(), loss.item(), a new "
        "tensor), an optimizer_step or on_before_optimizer_step override that clears the "
        "gradients, or configure_optimizers returning an optimizer over other parameters",
        "grad_not_zeroed": "Lightning's automatic optimization zeroes the gradients itself; "
        "with self.automatic_optimization = False, call opt.zero_grad() in training_step "
        "before self.manual_backward(loss)",
        "eval_mode_training": "Lightning sets train mode before each training epoch, so a "
        "self.eval() or self.freeze() in training_step, on_train_epoch_start or a callback "
        "keeps the module in eval; remove it (freeze layers with requires_grad instead)",
        "stale_optimizer": "configure_optimizers must build the optimizer from self.parameters() "
        "of the module being trained, after any layer is replaced in __init__ or setup()",
        "lr_schedule": "the scheduler from configure_optimizers steps at its 'interval' "
        "('epoch' by default, 'step' every batch): a schedule sized in epochs under "
        "interval 'step', or T_max in steps under 'epoch', ends early; return "
        "{'optimizer': opt, 'lr_scheduler': {'scheduler': s, 'interval': ...}} to match",
        "unheld_params": "configure_optimizers runs once, when fit starts: a layer unfrozen or "
        "replaced later must be added with optimizer.add_param_group (Lightning's "
        "BaseFinetuning.unfreeze_and_add_param_group does both)",
        "frozen_updated": "freeze before fit with requires_grad_(False) and build the optimizer "
        "in configure_optimizers over the trainable parameters only (or use "
        "BaseFinetuning.freeze)",
    },
    "transformers": {
        "weights_unchanged": "the Trainer calls backward and step itself, so look for a "
        "compute_loss override that returns a detached loss, max_grad_norm near 0 in "
        "TrainingArguments, or optimizers=(optimizer, scheduler) built over other parameters",
        "grad_not_zeroed": "the Trainer zeroes the gradients itself and "
        "gradient_accumulation_steps sums micro-batches on purpose; a callback or "
        "compute_loss that steps the optimizer itself skips the zeroing",
        "eval_mode_training": "the Trainer sets train mode before each step; a callback that "
        "calls model.eval() (on_step_begin, on_epoch_begin) keeps it in eval; remove it",
        "stale_optimizer": "an optimizers=(optimizer, scheduler) tuple must be built from the "
        "model passed to Trainer, after any head is replaced; or let the Trainer build it "
        "(learning_rate and weight_decay in TrainingArguments)",
        "lr_schedule": "TrainingArguments set the schedule: lr_scheduler_type, "
        "warmup_steps/warmup_ratio and num_train_epochs or max_steps; a max_steps shorter "
        "than the epochs, or a scheduler passed in optimizers= sized in epochs, ends it early",
        "unheld_params": "the Trainer builds its optimizer once, when train() starts: unfreeze "
        "before trainer.train(), or build the optimizer yourself and pass optimizers=(...)",
        "frozen_updated": "set requires_grad=False before trainer.train(), so the optimizer "
        "the Trainer builds leaves those parameters out",
    },
}


def fix(way: str, check: str, default: str) -> str:
    """The fix for `check` in `way`'s words, or `default` (a plain loop's)."""
    return _FIXES.get(way, {}).get(check, default)
