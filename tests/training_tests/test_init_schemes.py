from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sweeper import apply_init
from sweeper.training import SCHEMES


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Conv1d(4, 8, 3), nn.Linear(512, 10))


@pytest.mark.parametrize("scheme", [s for s in SCHEMES if s != "none"])
def test_apply_init_is_deterministic_under_seed(scheme: str) -> None:
    a, b = _net(), _net()
    torch.manual_seed(1)
    apply_init(a, scheme)
    torch.manual_seed(1)
    apply_init(b, scheme)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_apply_init_statistics_match_the_scheme() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(1000, 800)
    w = apply_init(nn.Sequential(layer), "kaiming_normal")[0].weight
    assert w.std().item() == pytest.approx(math.sqrt(2 / 1000), rel=0.03)
    assert torch.count_nonzero(layer.bias) == 0
    apply_init(nn.Sequential(layer), "xavier_uniform")
    assert layer.weight.abs().max().item() <= math.sqrt(6 / 1800) + 1e-6
    apply_init(nn.Sequential(layer), "orthogonal")
    wwt = layer.weight @ layer.weight.T
    assert torch.allclose(wwt, torch.eye(800), atol=1e-4)


def test_apply_init_none_leaves_the_model_as_built() -> None:
    net = _net()
    with torch.no_grad():
        net[0].weight.fill_(0.5)  # a deliberate init (or loaded weights)
    before = [p.clone() for p in net.parameters()]
    apply_init(net, "none")
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_apply_init_modules_touches_only_the_named_part() -> None:
    torch.manual_seed(0)
    net = nn.Sequential()
    net.add_module("backbone", nn.Sequential(nn.Linear(8, 16), nn.ReLU()))
    net.add_module("head", nn.Linear(16, 3))
    backbone = [p.clone() for p in net.backbone.parameters()]
    apply_init(net, "zeros", modules=["head"])
    assert all(torch.equal(a, b) for a, b in zip(backbone, net.backbone.parameters(), strict=True))
    assert torch.count_nonzero(net.head.weight) == 0
    apply_init(net, "orthogonal", modules=lambda m: [m.head])
    assert torch.count_nonzero(net.head.weight) > 0
    with pytest.raises(ValueError, match=r"init_modules names \['neck'\].*\['backbone', 'head'\]"):
        apply_init(net, "zeros", modules=["neck"])


def test_apply_init_default_resets_to_pytorch_init() -> None:
    layer = nn.Linear(100, 10)
    with torch.no_grad():
        layer.weight.fill_(5.0)
    apply_init(nn.Sequential(layer), "default")
    assert layer.weight.abs().max().item() <= 1 / math.sqrt(100) + 1e-6


def test_apply_init_unknown_scheme_names_choices() -> None:
    with pytest.raises(ValueError, match="unknown init scheme 'he_normal'; choose from"):
        apply_init(_net(), "he_normal")


@pytest.mark.parametrize(
    ("scheme", "probe"), [("zeros", "trial_symmetric_weights"), ("normal", "trial_init_loss")]
)
def test_apply_init_careless_schemes_are_stopped_by_trial_probes(scheme: str, probe: str) -> None:
    from sweeper.examples.digits import mlp_task
    from sweeper.probes import Context, trial_start_checks
    from sweeper.training import Data

    task = mlp_task()
    params = {"lr": 1e-3, "batch_size": 32, "dropout": 0.0, "init": scheme, "hidden": 128}
    ctx = Context(task, Data.of(task, torch.device("cpu")), params, torch.device("cpu"))
    failed = [f.probe for f in trial_start_checks(ctx) if f.verdict == "fail"]
    assert probe in failed
