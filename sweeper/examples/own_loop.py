"""The user's own training loop as the trial: digits images with random-shift augmentation.

``fit(params, trial)`` is ordinary PyTorch with three sweeper calls added:
``trial.watch(model, optimizer)`` (the per-trial probes, through hooks), ``trial.step(loss)``
(the loss checks) and ``trial.report(metrics)`` once per epoch (the pruner's answer comes
back as ``sweeper.TrialStopped``). The task also gives ``build_model`` and the data, so the
study gate runs on the same model and data before the search.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from sweeper.examples.digits import CNN, digits_split
from sweeper.task import Task


def random_shift(x: torch.Tensor, generator: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """Each 8x8 image moved by up to `max_shift` pixels in x and y, on x's device (blank
    edges take the image's minimum, the standardized blank value)."""
    n, pad = len(x), max_shift
    images = x.view(n, 8, 8)
    fill = images.amin(dim=(1, 2), keepdim=True)
    big = fill.expand(n, 8 + 2 * pad, 8 + 2 * pad).clone()
    big[:, pad : pad + 8, pad : pad + 8] = images
    crops = torch.stack(
        [big[:, dy : dy + 8, dx : dx + 8] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]
    )
    choice = torch.randint(0, len(crops), (n,), generator=generator).to(x.device)
    return crops[choice, torch.arange(n, device=x.device)].reshape(n, 64)


def own_loop_task() -> Task:
    """The digits CNN trained by its own `fit` loop with random-shift augmentation."""
    x_tr, x_va, y_tr, y_va = digits_split()
    train = (torch.as_tensor(x_tr), torch.as_tensor(y_tr))
    val = (torch.as_tensor(x_va), torch.as_tensor(y_va))

    def build(p: dict[str, Any]) -> torch.nn.Module:
        return CNN(int(p.get("channels", 16)), float(p["dropout"]))

    def fit(params: dict[str, Any], trial: Any) -> None:
        device = trial.device
        x, y = (t.to(device) for t in train)
        xv, yv = (t.to(device) for t in val)
        model = build(params).to(device)
        opt = torch.optim.SGD(
            model.parameters(),
            lr=params["lr"],
            momentum=0.9,
            nesterov=True,
            weight_decay=float(params.get("weight_decay", 0.0)),
        )
        trial.watch(model, opt)
        gen = torch.Generator().manual_seed(trial.number)
        state = trial.restore()  # after a crash: where the last checkpoint left off
        if state is not None:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            gen.set_state(state["generator"])
        shift = int(params.get("max_shift", 1))
        bs = int(params["batch_size"])
        for epoch in range(trial.start_epoch, trial.epochs):
            model.train()
            total = torch.zeros((), device=device)
            for idx in torch.randperm(len(x), generator=gen).to(device).split(bs):
                xb = random_shift(x[idx], gen, shift) if shift else x[idx]
                loss = F.cross_entropy(model(xb), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                trial.step(loss)
                opt.step()
                total += loss.detach() * len(idx)
            model.eval()
            with torch.no_grad():
                out = model(xv)
                trial.checkpoint(
                    lambda: {
                        "model": model.state_dict(),
                        "optimizer": opt.state_dict(),
                        "generator": gen.get_state(),
                    }
                )
                metrics = {
                    "train_loss": float(total) / len(x),
                    "val_loss": float(F.cross_entropy(out, yv)),
                    "val_accuracy": float((out.argmax(1) == yv).float().mean()),
                }
                if epoch == trial.epochs - 1:  # the train split, judged as validation is:
                    # the bias/variance verdict's train side (val_accuracy -> train_accuracy)
                    metrics["train_accuracy"] = float((model(x).argmax(1) == y).float().mean())
                trial.report(metrics)

    return Task(
        build_model=build,
        train=train,
        val=val,
        loss="cross_entropy",
        kind="multiclass",
        num_classes=10,
        fit=fit,
    )
