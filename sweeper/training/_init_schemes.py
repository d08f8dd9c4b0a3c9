"""Weight-init schemes, applied the same way in every trial, probe and user's training code."""

from __future__ import annotations

import torch
from torch import nn

SCHEMES = (
    "default",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
    "normal",
    "zeros",
)
_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def apply_init(model: nn.Module, scheme: str) -> nn.Module:
    """Re-initialise every Linear and Conv layer of `model` in place and return it.

    "default" is PyTorch's own init (``reset_parameters``). The others set the weight with the
    named ``torch.nn.init`` function (kaiming for ReLU, gain 1 for xavier and orthogonal) and the
    bias to zero. "normal" (N(0, 1) whatever the layer's width) and "zeros" are there because
    people try them; the per-trial probes stop such trials before they train.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; choose from {list(SCHEMES)}")
    with torch.no_grad():
        for layer in model.modules():
            if not isinstance(layer, _LAYERS):
                continue
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
