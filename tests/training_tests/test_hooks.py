"""Task hooks and structured inputs through sweeper's one loop (no Ray: the loop itself)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

import sweeper
from sweeper.errors import TaskError
from sweeper.training import Data, evaluate, start_run, train_epoch

CPU = torch.device("cpu")
PARAMS = {"lr": 1e-2, "batch_size": 16, "dropout": 0.0}


def _tokens(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids whose label is whether token 1 occurs (a task an embedding model learns)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, 30, (n, 12), generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    ids[y == 1, 0] = 1
    return ids[:, torch.randperm(12, generator=g)], y


class BagOfEmbeddings(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(30, 16)
        self.out = nn.Linear(16, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        assert ids.dtype == torch.long, "token ids must reach the model as integers"
        return self.out(self.emb(ids).mean(1))


def _embedding_task(**hooks: Any) -> sweeper.Task:
    return sweeper.Task(
        build_model=lambda p: BagOfEmbeddings(),
        train=_tokens(400, 0),
        val=_tokens(200, 1),
        kind="multiclass",
        num_classes=2,
        **hooks,
    )


def test_gate_passes_a_healthy_embedding_classifier_on_integer_tokens() -> None:
    report = sweeper.probe(_embedding_task(), params=PARAMS)
    assert not report.failures, [(f.probe, f.measured, f.hint) for f in report.failures]
    assert report["data_scale"].verdict == "skip"  # token ids are not "unnormalized"
    assert report["gradcheck"].verdict == "skip"
    assert report["zero_input_baseline"].verdict == "pass"


def test_gate_passes_the_transformer_on_dict_batches() -> None:
    from sweeper.examples.text import transformer_task

    params = {**PARAMS, "lr": 1e-3, "batch_size": 64, "precision": "bf16", "grad_clip": 1.0}
    report = sweeper.probe(transformer_task(train_rows=600, val_rows=200), params=params)
    assert not report.failures, [(f.probe, f.measured, f.hint) for f in report.failures]
    assert report["batch_independence"].verdict == "pass"


class Wide(nn.Module):
    def __init__(self, fill: str) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
        )
        with torch.no_grad():
            for layer in self.net:
                if isinstance(layer, nn.Linear):
                    if fill == "constant":
                        layer.weight.fill_(0.05)
                    else:
                        layer.weight.normal_(0.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@pytest.mark.parametrize(
    ("fill", "words"), [("constant", "constant weights"), ("normal", "far too large")]
)
def test_gate_fails_a_model_whose_own_init_is_broken_and_names_the_init(
    fill: str, words: str
) -> None:
    from sweeper.examples.digits import digits_split

    x_tr, x_va, y_tr, y_va = digits_split()
    task = sweeper.Task(
        build_model=lambda p: Wide(fill), train=(x_tr, y_tr), val=(x_va, y_va), num_classes=10
    )
    report = sweeper.probe(task, params=PARAMS)
    finding = report["weight_init"]
    assert finding.verdict == "fail"
    assert "the model's own init (init: none)" in finding.hint and words in finding.hint


def test_pretrained_backbone_is_bitwise_unchanged_by_a_searched_init(tmp_path: Any) -> None:
    from sweeper.examples.finetune import finetune_task, pretrained_backbone
    from sweeper.training import build_model

    task = finetune_task(cache=str(tmp_path))
    saved = torch.load(pretrained_backbone(tmp_path), weights_only=True)
    as_built = build_model(task, {**PARAMS, "init": "none"}, CPU)
    for scheme in ("kaiming_normal", "zeros", "default"):
        model = build_model(task, {**PARAMS, "init": scheme}, CPU)
        for name, value in model.backbone.state_dict().items():
            assert torch.equal(value, saved[name]), f"{scheme} changed backbone {name}"
        assert not torch.equal(model.head[1].weight, as_built.head[1].weight)


class PairDataset(Dataset):
    """Yields ({"a": float features, "ids": token ids}, label): a Dataset of dict inputs."""

    def __init__(self, n: int, seed: int) -> None:
        self.ids, self.y = _tokens(n, seed)
        self.a = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> Any:
        return {"a": self.a[i], "ids": self.ids[i]}, int(self.y[i])


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(30, 8)
        self.out = nn.Linear(11, 2)

    def forward(self, a: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat([a, self.emb(ids).mean(1)], dim=1))


def test_dict_batches_from_a_dataset_with_collate_fn_and_loader_options() -> None:
    calls = []

    def collate(items: list[Any]) -> Any:
        calls.append(len(items))
        return torch.utils.data.default_collate(items)

    task = sweeper.Task(
        build_model=lambda p: TwoInputs(),
        train=PairDataset(96, 0),
        val=PairDataset(40, 1),
        num_classes=2,
        collate_fn=collate,
        loader={"num_workers": 0, "drop_last": False},
    )
    run = start_run(task, Data.of(task, CPU), PARAMS, CPU, seed=0)
    assert math.isfinite(train_epoch(run))
    assert calls[:6] == [16] * 6
    assert set(evaluate(run)) == {"val_loss", "val_accuracy"}


def test_tuple_inputs_call_the_model_with_several_arguments() -> None:
    ids, y = _tokens(64, 0)
    a = torch.randn(64, 3)
    task = sweeper.Task(
        build_model=lambda p: TwoInputs(), train=((a, ids), y), val=((a, ids), y), num_classes=2
    )
    run = start_run(task, Data.of(task, CPU), PARAMS, CPU, seed=0)
    assert math.isfinite(train_epoch(run))


def test_task_hooks_optimizer_scheduler_metrics_accumulation() -> None:
    seen: dict[str, Any] = {}

    def optimizer(model: nn.Module, params: dict[str, Any]) -> torch.optim.Optimizer:
        return torch.optim.SGD(
            [
                {"params": model.emb.parameters(), "lr": params["lr"] / 10},
                {"params": model.out.parameters()},
            ],
            lr=params["lr"],
        )

    def scheduler(opt: Any, params: dict[str, Any], steps: int, epochs: int) -> Any:
        seen["steps_per_epoch"], seen["epochs"] = steps, epochs
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))

    def metrics(out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        seen["rows"] = len(y)
        return {"top1": float((out.argmax(1) == y).float().mean())}

    task = _embedding_task(optimizer=optimizer, scheduler=scheduler, metrics=metrics)
    params = {**PARAMS, "grad_accumulation": 3, "grad_clip": 0.5}
    run = start_run(task, Data.of(task, CPU), params, CPU, seed=0, epochs=2)
    train_epoch(run)
    micro = math.ceil(400 / 16)
    assert run.steps == seen["steps_per_epoch"] == math.ceil(micro / 3) and seen["epochs"] == 2
    assert run.optimizer.param_groups[1]["lr"] == pytest.approx(1e-2 / (1 + run.steps))
    got = evaluate(run)
    assert seen["rows"] == 200 and got["top1"] == pytest.approx(got["val_accuracy"])


def test_metrics_hook_that_returns_no_dict_says_so() -> None:
    task = _embedding_task(metrics=lambda out, y: 0.5)
    run = start_run(task, Data.of(task, CPU), PARAMS, CPU, seed=0)
    with pytest.raises(TypeError, match="metrics hook returned float; it must return a dict"):
        evaluate(run)


def test_bf16_autocast_trains_and_evaluates() -> None:
    task = _embedding_task()
    run = start_run(task, Data.of(task, CPU), {**PARAMS, "precision": "bf16"}, CPU, seed=0)
    for _ in range(3):
        train_epoch(run)
    assert evaluate(run)["val_accuracy"] > 0.8


def test_task_refuses_bad_hooks_all_at_once() -> None:
    with pytest.raises(TaskError) as err:
        sweeper.Task(
            build_model=lambda p: None,
            train=_tokens(8, 0),
            val=_tokens(8, 1),
            num_classes=2,
            metrics="f1",  # type: ignore[arg-type]
            loader={"batch_size": 8},
            init_modules=3,
        )
    text = str(err.value)
    assert "metrics must be a callable" in text
    assert "loader options ['batch_size'] are set by sweeper" in text
    assert "init_modules must be a list of submodule names" in text


def test_fit_only_task_gate_says_what_it_skipped() -> None:
    task = sweeper.Task(fit=lambda params, trial: None, num_classes=10)
    report = sweeper.probe(task)
    assert {f.verdict for f in report.findings} == {"skip"}
    assert (
        "the task gives no train/val data (it trains itself with fit)" in report["init_loss"].hint
    )
