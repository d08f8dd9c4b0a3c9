"""`sweeper init`: a starter study definition and task module in the current folder.

Both run as written (on scikit-learn's bundled breast-cancer data), so `sweeper validate` and
`sweeper run` work at once; the comments say what to replace with the user's own project.
"""

from __future__ import annotations

import re
from pathlib import Path

from sweeper.errors import SweeperError


class InitError(SweeperError):
    """`sweeper init` would overwrite a file (without --force)."""

    exit_code = 2


DEFINITION = """\
# A sweeper study. Check it:  sweeper validate {name}.yaml   Run it:  sweeper run {name}.yaml
name: {name}
description: what this study tunes, for whoever reads the store later
task: {module}:task   # module:function returning a sweeper.Task ({module}.py, here)
storage: sqlite:///sweeps.db   # one file here; a PostgreSQL URL for a cluster

objective:
  metric: val_accuracy         # val_accuracy | val_loss | train_loss | any metric your task reports
  direction: maximize
  # target: 0.98               # the level you aim for (human-level); unset: accuracy's 1.0

budget:
  trials: 30                   # finished trials in the study (re-running resumes it)
  epochs: 20                   # epochs per trial, the pruner's time axis
  max_consecutive_failures: 5  # stop instead of burning the budget on a broken setup

# The ranges the usual checklists start from; narrow them once you know more.
search:
  lr: {{type: float, low: 1.0e-4, high: 1.0e-1, log: true}}
  batch_size: {{type: categorical, choices: [16, 32, 64, 128]}}
  dropout: {{type: float, low: 0.0, high: 0.5}}
  # none keeps the model as build_model made it; He (kaiming) suits ReLU, Xavier tanh/sigmoid
  init: {{type: categorical, choices: [none, kaiming_normal, xavier_uniform]}}
  # any other name is passed to build_model (and to the optimizer if it is one of its options)
  hidden: {{type: int, low: 32, high: 256, log: true}}

sampler: {{type: tpe, seed: 0}}
pruner: {{type: median, warmup_epochs: 5}}   # stop trials below the median of the others
probes: {{gate: strict, trial: true}}       # sanity gate before the search; per-trial probes
resources: {{cpus: 1, gpus: 0}}             # per trial; gpus: 0.25 packs four trials per GPU
# After the search, train the 3 best configurations again with 2 new seeds each: the best is
# then the one with the best mean, and `sweeper best` shows its mean ± std.
confirm: {{top: 3, seeds: 2}}
"""

TASK = '''\
"""The task of study {name}: what sweeper trains in each trial.

Replace the three marked parts with your project's data, model and loss. Everything else is
optional: see the README's "Your own task" for hooks (optimizer, scheduler, metrics, your own
training loop).
"""

import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from torch import nn

import sweeper


def task() -> sweeper.Task:
    # 1. Data: (X, y) tensors, numpy arrays or torch Datasets, for training and validation.
    #    Standardize with statistics of the training split only.
    x, y = load_breast_cancer(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    mean, std = x_tr.mean(0), x_tr.std(0)
    x_tr, x_va = (x_tr - mean) / std, (x_va - mean) / std

    # 2. Model: built once per trial from its params (lr, batch_size, dropout, init, hidden).
    def build_model(params: dict) -> nn.Module:
        hidden = params.get("hidden", 64)
        return nn.Sequential(
            nn.Linear(x_tr.shape[1], hidden),
            nn.ReLU(),
            nn.Dropout(params.get("dropout", 0.0)),
            nn.Linear(hidden, 2),  # raw logits, one per class: the loss applies the softmax
        )

    # 3. Loss and kind: cross_entropy | nll | bce | mse | l1 | any callable(output, target).
    return sweeper.Task(
        build_model=build_model,
        train=(torch.tensor(x_tr, dtype=torch.float32), torch.tensor(y_tr)),
        val=(torch.tensor(x_va, dtype=torch.float32), torch.tensor(y_va)),
        loss="cross_entropy",
        kind="multiclass",  # multiclass | binary | regression
        num_classes=2,
    )
'''


def write_starter(folder: Path, name: str, force: bool = False) -> list[Path]:
    """Write `<name>.yaml` and its task module into `folder`; the paths written."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
        raise InitError(f"name {name!r}: use letters, digits, - and _, starting with a letter")
    module = re.sub(r"\W", "_", name) + "_task"
    files = {
        folder / f"{name}.yaml": DEFINITION.format(name=name, module=module),
        folder / f"{module}.py": TASK.format(name=name),
    }
    there = [str(p) for p in files if p.exists()]
    if there and not force:
        raise InitError(f"{' and '.join(there)} already exist(s); pass --force to overwrite")
    for path, text in files.items():
        path.write_text(text)
    return list(files)
