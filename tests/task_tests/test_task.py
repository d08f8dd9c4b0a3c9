"""sweeper.Task's structures: the kinds, reading a model's output, the class dimension of the
named losses, and an accuracy that counts tokens, pixels and labels, never above 1."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sweeper
from sweeper.errors import TaskError
from sweeper.training import class_dim, correct, read_output, resolve_loss


def _data(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(n, 4), torch.randint(0, 3, (n,))


def test_task_fit_only_needs_nothing_but_fit() -> None:
    task = sweeper.Task(fit=lambda params, trial: None)
    assert task.num_classes is None and task.train is None


def test_task_kinds_multilabel_and_custom_are_accepted_with_their_losses() -> None:
    x, _ = _data()
    labels = torch.randint(0, 2, (8, 5)).float()
    sweeper.Task(
        build_model=lambda p: nn.Linear(4, 5),
        train=(x, labels),
        val=(x, labels),
        loss="bce",
        kind="multilabel",
    )
    sweeper.Task(
        build_model=lambda p: nn.Linear(4, 4),
        train=(x, x),
        val=(x, x),
        loss=lambda out, y: F.mse_loss(out, y),
        kind="custom",
    )
    with pytest.raises(TaskError, match="is for kind='multiclass'"):
        sweeper.Task(
            build_model=lambda p: nn.Linear(4, 5),
            train=(x, labels),
            val=(x, labels),
            loss="cross_entropy",
            kind="multilabel",
        )


def test_task_metric_problem_names_what_the_loop_reports() -> None:
    x, y = _data()
    task = sweeper.Task(
        build_model=lambda p: nn.Linear(4, 3), train=(x, y), val=(x, y), num_classes=3
    )
    assert task.metric_problem("val_accuracy") is None
    problem = task.metric_problem("val_f1")
    assert problem and "val_accuracy, val_loss, train_loss" in problem
    hooked = sweeper.Task(
        build_model=lambda p: nn.Linear(4, 3),
        train=(x, y),
        val=(x, y),
        num_classes=3,
        metrics=lambda o, t: {"val_f1": 1.0},
    )
    assert hooked.metric_problem("val_f1") is None


def test_read_output_takes_logits_from_a_model_output_object_or_dict() -> None:
    logits = torch.randn(2, 3)

    class Out(dict):  # what a Hugging Face ModelOutput is: a dict with attributes
        def __getattr__(self, name: str) -> torch.Tensor:
            return self[name]

    assert read_output(Out(logits=logits, loss=torch.tensor(1.0))) is logits
    assert read_output({"logits": logits}) is logits
    pair = (logits, logits)
    assert read_output(pair) is pair  # tuples go to the loss as they are
    assert read_output({"a": logits}, "a") is logits
    assert read_output(pair, lambda o: o[1]) is logits


def test_named_cross_entropy_takes_classes_in_dim_1_or_last_and_ignores_minus_100() -> None:
    torch.manual_seed(0)
    out_last = torch.randn(4, 7, 5)  # (N, T, C), as Hugging Face gives token logits
    y = torch.randint(0, 5, (4, 7))
    y[0, :3] = -100
    ce = resolve_loss("cross_entropy")
    want = F.cross_entropy(out_last.reshape(-1, 5), y.reshape(-1))
    assert torch.allclose(ce(out_last, y), want)
    assert torch.allclose(ce(out_last.transpose(1, 2), y), want)  # (N, C, T)
    assert class_dim(out_last, y) == 2 and class_dim(out_last.transpose(1, 2), y) == 1


def test_accuracy_counts_tokens_pixels_and_labels_never_above_one() -> None:
    y = torch.tensor([[1, 2, -100, 2], [0, 0, 0, 1]])  # 4 tokens, 3 classes
    out = F.one_hot(y.clamp_min(0), 3).float()  # (N, T, C), right everywhere it counts
    right, counted = correct(out, y)
    assert (int(right), int(counted)) == (7, 7)
    pixels = torch.zeros(2, 3, 4, 4)
    pixels[:, 1] = 1.0
    right, counted = correct(pixels, torch.ones(2, 4, 4, dtype=torch.long))
    assert int(right) == int(counted) == 32
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    right, counted = correct(torch.tensor([[3.0, -1.0], [2.0, -2.0]]), labels, threshold=0.0)
    assert (int(right), int(counted)) == (3, 4)
    probs = torch.tensor([0.9, 0.2, 0.7])
    right, counted = correct(probs, torch.tensor([1.0, 0.0, 0.0]), threshold=0.5)
    assert (int(right), int(counted)) == (2, 3)


def test_evaluate_on_a_token_task_reports_per_token_accuracy() -> None:
    torch.manual_seed(0)
    ids = torch.randint(0, 20, (64, 10))
    task = sweeper.Task(
        build_model=lambda p: nn.Sequential(nn.Embedding(20, 8), nn.Linear(8, 20)),
        train=(ids[:48], ids[:48].roll(-1, 1)),
        val=(ids[48:], ids[48:].roll(-1, 1)),
        num_classes=20,
    )
    data = sweeper.training.Data.of(task, torch.device("cpu"))
    params = {"lr": 1e-3, "batch_size": 16, "dropout": 0.0}
    run = sweeper.training.start_run(task, data, params, torch.device("cpu"), seed=0)
    acc = sweeper.training.evaluate(run)["val_accuracy"]
    assert 0.0 <= acc <= 1.0 and not math.isnan(acc)
