"""Weight-init schemes, applied the same way in every trial, probe and user's training code."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Union

import torch
from torch import nn

from sweeper.catalog import INIT_SCHEMES

SCHEMES = INIT_SCHEMES  # declared in sweeper.catalog, which the definition also reads
_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
# Which part of a model a searched scheme may re-initialise: submodule names ("head",
# "encoder.proj") or a function model -> modules. None means the whole model.
InitModules = Union[Sequence[str], Callable[[nn.Module], Iterable[nn.Module]], None]  # noqa: UP007


Layer = Union[nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d]  # noqa: UP007


def init_targets(model: nn.Module, modules: InitModules = None) -> list[Layer]:
    """The Linear and Conv layers a scheme may touch: all of them, or those inside `modules`."""
    if modules is None:
        roots: list[nn.Module] = [model]
    elif callable(modules):
        roots = list(modules(model))
    else:
        names = dict(model.named_modules())
        missing = [n for n in modules if n not in names]
        if missing:
            raise ValueError(
                f"init_modules names {missing}, which the model does not have; its top-level "
                f"modules are {[n for n, _ in model.named_children()]}"
            )
        roots = [names[n] for n in modules]
    seen: dict[int, Layer] = {}
    for root in roots:
        for layer in root.modules():
            if isinstance(layer, _LAYERS):
                seen.setdefault(id(layer), layer)
    return list(seen.values())


def apply_init(model: nn.Module, scheme: str, modules: InitModules = None) -> nn.Module:
    """Re-initialise the model's Linear and Conv layers in place and return the model.

    "none" leaves the model exactly as it was built (pretrained or deliberately initialised
    weights are kept); it is the default. "default" is PyTorch's own init
    (``reset_parameters``), which replaces whatever the model's constructor or a checkpoint
    put there. The others set the weight with the named ``torch.nn.init`` function (kaiming
    for ReLU, gain 1 for xavier and orthogonal) and the bias to zero. "normal" (N(0, 1)
    whatever the layer's width) and "zeros" are there because people try them; the per-trial
    probes stop such trials before they train.

    `modules` limits the scheme to part of the model, e.g. ``["head"]`` for a new head on a
    pretrained backbone (a task says so with ``sweeper.Task(init_modules=...)``).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; choose from {list(SCHEMES)}")
    if scheme == "none":
        return model
    with torch.no_grad():
        for layer in init_targets(model, modules):
            if scheme == "default":
                layer.reset_parameters()
                continue
            w = layer.weight
            if scheme == "xavier_uniform":
                nn.init.xavier_uniform_(w)
            elif scheme == "xavier_normal":
                nn.init.xavier_normal_(w)
            elif scheme == "kaiming_uniform":
                nn.init.kaiming_uniform_(w, nonlinearity="relu")
            elif scheme == "kaiming_normal":
                nn.init.kaiming_normal_(w, nonlinearity="relu")
            elif scheme == "orthogonal":
                nn.init.orthogonal_(w)
            elif scheme == "normal":
                nn.init.normal_(w, 0.0, 1.0)  # unit variance whatever the fan-in: too large
            else:
                nn.init.zeros_(w)  # every unit the same: symmetric
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return model
