"""The bug zoo: small tasks on bundled scikit-learn data, each broken in one known way, and
healthy ones that must pass. One function per case; add a case by adding a function and a
line in BROKEN or HEALTHY."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from sweeper import Task
from sweeper.examples.digits import CNN, MLP, digits_split


def _standardize(x_tr: np.ndarray, x_va: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = x_tr.mean(0), x_tr.std(0)
    std[std == 0] = 1
    return ((x_tr - mean) / std).astype(np.float32), ((x_va - mean) / std).astype(np.float32)


def _digits(build: Callable[[dict[str, Any]], nn.Module] | None = None, **kw: Any) -> Task:
    x_tr, x_va, y_tr, y_va = digits_split()
    args: dict[str, Any] = dict(
        build_model=build or (lambda p: MLP(64, p["dropout"])),
        train=(x_tr, y_tr),
        val=(x_va, y_va),
        loss="cross_entropy",
        kind="multiclass",
        num_classes=10,
    )
    args.update(kw)
    return Task(**args)


class ZeroInitMLP(nn.Module):
    """Weights held as plain Parameters (no nn.Linear), so no init scheme reaches them."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(64, 64) * scale)
        self.b1 = nn.Parameter(torch.zeros(64))
        self.w2 = nn.Parameter(torch.randn(64, 10) * scale)
        self.b2 = nn.Parameter(torch.zeros(10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x @ self.w1 + self.b1) @ self.w2 + self.b2


class Detached(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(64, 64), nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2(F.relu(self.l1(x)).detach())


class BatchMixer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(64, 64), nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.l1(x))
        return self.l2(h - h.mean(0, keepdim=True))  # "normalizes" across the batch, also at eval


class EvalDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(64, 64), nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2(F.dropout(F.relu(self.l1(x)), 0.5, training=True))


class ResidualMLP(nn.Module):
    def __init__(self, width: int = 64, blocks: int = 8) -> None:
        super().__init__()
        self.inp = nn.Linear(64, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(width), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width)
            )
            for _ in range(blocks)
        )
        self.out = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


class ViewFlattensBatch(nn.Module):
    """A classifier head reshaped with view(-1, 5): two rows of 5 per sample."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = MLP(64, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x).view(-1, 5)


def _deep(
    depth: int, act: Callable[[], nn.Module], width: int = 32, gain: float = 1.0
) -> nn.Module:
    layers: list[nn.Module] = []
    fan_in = 64
    for _ in range(depth):
        lin = nn.Linear(fan_in, width)
        if gain != 1.0:
            nn.init.normal_(lin.weight, std=gain * (2 / fan_in) ** 0.5)
            nn.init.zeros_(lin.bias)
        layers += [lin, act()]
        fan_in = width
    return nn.Sequential(*layers, nn.Linear(fan_in, 10))


class SeqGRU(nn.Module):
    """Digits as 8 time steps of 8 pixels; the last step's hidden state classifies."""

    def __init__(self, batch_first: bool = True) -> None:
        super().__init__()
        self.gru = nn.GRU(8, 32, batch_first=batch_first)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return self.head(out[:, -1])


class SeqConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(8, 32, 3, padding=1), nn.ReLU(), nn.Conv1d(32, 32, 3, padding=1), nn.ReLU()
        )
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x.transpose(1, 2)).mean(-1))


class TokenEmbedding(nn.Module):
    """Pixel intensities 0–16 as token ids: an embedding per position, flattened."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(17, 8)
        self.head = nn.Sequential(nn.Linear(64 * 8, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(ids).flatten(1))


class TinyTransformer(nn.Module):
    """Each image row a token (8 pixels projected to d), learned positions, one encoder layer."""

    def __init__(self, d: int = 32) -> None:
        super().__init__()
        self.proj = nn.Linear(8, d)
        self.pos = nn.Parameter(torch.randn(8, d) * 0.1)
        layer = nn.TransformerEncoderLayer(d, 4, 64, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(8 * d, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(self.proj(x) + self.pos).flatten(1))


def _tokens() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return train_test_split(x.astype(np.int64), y, test_size=0.2, random_state=0, stratify=y)


def _sequences() -> Task:
    x_tr, x_va, y_tr, y_va = digits_split()
    return dict(train=(x_tr.reshape(-1, 8, 8), y_tr), val=(x_va.reshape(-1, 8, 8), y_va))


def _cancer(balanced: bool = True) -> tuple[np.ndarray, ...]:
    x, y = load_breast_cancer(return_X_y=True)
    if not balanced:
        keep = np.concatenate([np.where(y == 1)[0], np.where(y == 0)[0][:20]])  # ~95% positive
        x, y = x[keep], y[keep]
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    x_tr, x_va = _standardize(x_tr, x_va)
    return x_tr, x_va, y_tr.astype(np.float32), y_va.astype(np.float32)


def _binary(build: Callable[[dict[str, Any]], nn.Module], **kw: Any) -> Task:
    x_tr, x_va, y_tr, y_va = _cancer()
    args: dict[str, Any] = dict(
        build_model=build, train=(x_tr, y_tr), val=(x_va, y_va), loss="bce", kind="binary"
    )
    args.update(kw)
    return Task(**args)


# -- broken ------------------------------------------------------------------------------------
def unnormalized_inputs() -> Task:
    x, y = load_digits(return_X_y=True)
    x = (x * 255 / 16).astype(np.float32)  # raw 0–255 pixels, never standardized
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return _digits(train=(x_tr, y_tr), val=(x_va, y_va))


def zeroed_inputs() -> Task:
    x_tr, x_va, y_tr, y_va = digits_split()
    return _digits(train=(x_tr * 0, y_tr), val=(x_va * 0, y_va))


def misaligned_labels() -> Task:
    x_tr, x_va, y_tr, y_va = digits_split()
    rng = np.random.default_rng(0)
    return _digits(train=(x_tr, rng.permutation(y_tr)), val=(x_va, y_va))


def all_zero_init() -> Task:
    return _digits(build=lambda p: ZeroInitMLP(scale=0.0))


def init_std_too_large() -> Task:
    return _digits(build=lambda p: ZeroInitMLP(scale=10.0))


def softmax_before_cross_entropy() -> Task:
    return _digits(build=lambda p: nn.Sequential(MLP(64, p["dropout"]), nn.Softmax(dim=-1)))


def relu_on_regression_output() -> Task:
    return _diabetes(
        lambda p: nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1), nn.ReLU())
    )


def raw_logits_into_nll() -> Task:
    return _digits(loss="nll")


def frozen_layer() -> Task:
    def build(p: dict[str, Any]) -> nn.Module:
        model = MLP(64, p["dropout"])
        model.net[0].requires_grad_(False)
        return model

    return _digits(build=build)


def detached_layer() -> Task:
    return _digits(build=lambda p: Detached())


def batch_mixing_layer() -> Task:
    return _digits(build=lambda p: BatchMixer())


def nan_in_data() -> Task:
    x_tr, x_va, y_tr, y_va = digits_split()
    x_tr = x_tr.copy()
    x_tr[5, 3] = np.nan
    return _digits(train=(x_tr, y_tr))


def labels_out_of_range() -> Task:
    x_tr, x_va, y_tr, y_va = digits_split()
    return _digits(train=(x_tr, y_tr + 1), val=(x_va, y_va + 1))  # 1..10 with num_classes=10


def train_val_overlap() -> Task:
    x_tr, _, y_tr, _ = digits_split()
    return _digits(val=(x_tr[:360], y_tr[:360]))


def sorted_unshuffled_labels() -> Task:
    x_tr, x_va, y_tr, y_va = digits_split()
    x, y = np.concatenate([x_tr, x_va]), np.concatenate([y_tr, y_va])
    order = np.argsort(y, kind="stable")
    x, y = x[order], y[order]
    cut = int(0.8 * len(y))  # split by position, without shuffling
    return _digits(train=(x[:cut], y[:cut]), val=(x[cut:], y[cut:]))


def dropout_at_eval() -> Task:
    return _digits(build=lambda p: EvalDropout())


# Shapes, output range, target scale and degenerate outputs: the bugs people post most about
# (StackOverflow "Using a target size that is different to the input size", "Expected input
# batch_size to match target batch_size", "all elements of input should be between 0 and 1",
# double sigmoid with BCEWithLogitsLoss; DeepLocalize/AutoTrainer's vanishing and exploding
# gradients, dying ReLUs; unscaled regression targets).
def mse_output_target_broadcast() -> Task:
    # nn.MSELoss on an (N, 1) output and an (N,) target: broadcasts to (N, N)
    return _diabetes(
        lambda p: nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1)),
        loss=nn.MSELoss(),
    )


def l1_flat_output_column_target() -> Task:
    # the reverse: the model squeezes to (N,), the targets were kept as an (N, 1) column
    task = _diabetes(
        lambda p: nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1), nn.Flatten(0)),
        loss=nn.L1Loss(),
    )
    (x_tr, y_tr), (x_va, y_va) = task.train, task.val
    return _diabetes(
        task.build_model,
        loss=nn.L1Loss(),
        train=(x_tr, y_tr.reshape(-1, 1)),
        val=(x_va, y_va.reshape(-1, 1)),
    )


def sigmoid_then_bce_with_logits() -> Task:
    return _binary(
        lambda p: nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 1), nn.Sigmoid())
    )


def logits_into_bce_loss() -> Task:
    # nn.BCELoss takes probabilities; the model returns raw logits
    return _binary(
        lambda p: nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 1), nn.Flatten(0)),
        loss=nn.BCELoss(),
    )


def bce_with_two_outputs() -> Task:
    return _binary(lambda p: nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 2)))


def single_logit_cross_entropy() -> Task:
    x_tr, x_va, y_tr, y_va = _cancer()
    return Task(
        build_model=lambda p: nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 1)),
        train=(x_tr, y_tr.astype(np.int64)),
        val=(x_va, y_va.astype(np.int64)),
        loss="cross_entropy",
        kind="multiclass",
        num_classes=2,
    )


def unscaled_regression_targets() -> Task:
    x, y = load_diabetes(return_X_y=True)  # y: disease progression, mean 152, std 77
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.25, random_state=0)
    x_tr, x_va = _standardize(x_tr, x_va)
    return Task(
        build_model=lambda p: nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1)),
        train=(x_tr, y_tr.astype(np.float32)),
        val=(x_va, y_va.astype(np.float32)),
        loss="mse",
        kind="regression",
    )


def too_few_outputs() -> Task:
    # num_classes off by one in the model: 9 outputs for labels 0..9
    return _digits(build=lambda p: nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 9)))


def view_flattens_batch() -> Task:
    return _digits(build=lambda p: ViewFlattensBatch())


def log_softmax_over_batch() -> Task:
    return _digits(
        build=lambda p: nn.Sequential(MLP(64, p["dropout"]), nn.LogSoftmax(dim=0)), loss="nll"
    )


def vanishing_sigmoid_stack() -> Task:
    return _digits(build=lambda p: _deep(12, nn.Sigmoid))


def exploding_deep_relu() -> Task:
    return _digits(build=lambda p: _deep(20, nn.ReLU, gain=1.6))


def dead_relu_negative_bias() -> Task:
    def build(p: dict[str, Any]) -> nn.Module:
        model = MLP(64, p["dropout"])
        nn.init.constant_(model.net[0].bias, -10.0)
        return model

    return _digits(build=build)


def unscaled_tabular_features() -> Task:
    x, y = load_breast_cancer(return_X_y=True)  # areas in the thousands, smoothness ~0.1
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    return _binary(
        lambda p: nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 1)),
        train=(x_tr.astype(np.float32), y_tr.astype(np.float32)),
        val=(x_va.astype(np.float32), y_va.astype(np.float32)),
    )


def gru_without_batch_first() -> Task:
    # (batch, time, features) input into a GRU that reads (time, batch, features)
    return _digits(build=lambda p: SeqGRU(batch_first=False), **_sequences())


# -- healthy -----------------------------------------------------------------------------------
def healthy_mlp() -> Task:
    return _digits()


def healthy_cnn_batchnorm() -> Task:
    return _digits(build=lambda p: CNN(8, p["dropout"]))


def healthy_label_smoothing() -> Task:
    return _digits(loss=nn.CrossEntropyLoss(label_smoothing=0.1))


def healthy_imbalanced_binary_bce() -> Task:
    x, y = load_breast_cancer(return_X_y=True)
    keep = np.concatenate([np.where(y == 1)[0], np.where(y == 0)[0][:60]])  # ~86% positive
    x, y = x[keep], y[keep]
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    x_tr, x_va = _standardize(x_tr, x_va)
    return Task(
        build_model=lambda p: nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 1)),
        train=(x_tr, y_tr.astype(np.float32)),
        val=(x_va, y_va.astype(np.float32)),
        loss="bce",
        kind="binary",
    )


def _diabetes(build: Callable[[dict[str, Any]], nn.Module], **kw: Any) -> Task:
    x, y = load_diabetes(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.25, random_state=0)
    x_tr, x_va = _standardize(x_tr, x_va)
    mu, sd = y_tr.mean(), y_tr.std()
    args: dict[str, Any] = dict(
        build_model=build,
        train=(x_tr, ((y_tr - mu) / sd).astype(np.float32)),
        val=(x_va, ((y_va - mu) / sd).astype(np.float32)),
        loss="mse",
        kind="regression",
    )
    args.update(kw)
    return Task(**args)


def healthy_regression_mse() -> Task:
    return _diabetes(lambda p: nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1)))


def healthy_deep_residual() -> Task:
    return _digits(build=lambda p: ResidualMLP())


def healthy_embedding_tokens() -> Task:
    x_tr, x_va, y_tr, y_va = _tokens()
    return _digits(build=lambda p: TokenEmbedding(), train=(x_tr, y_tr), val=(x_va, y_va))


def healthy_gru_sequence() -> Task:
    return _digits(build=lambda p: SeqGRU(), **_sequences())


def healthy_conv1d_sequence() -> Task:
    return _digits(build=lambda p: SeqConv(), **_sequences())


def healthy_small_transformer() -> Task:
    return _digits(build=lambda p: TinyTransformer(), **_sequences())


def healthy_prior_bias_imbalanced() -> Task:
    # ~95% positive; the last layer's bias starts at the prior's log-odds (Karpathy's recipe)
    x_tr, x_va, y_tr, y_va = _cancer(balanced=False)
    prior = float(y_tr.mean())

    def build(p: dict[str, Any]) -> nn.Module:
        model = nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 1))
        nn.init.constant_(model[2].bias, float(np.log(prior / (1 - prior))))
        return model

    return _binary(build, train=(x_tr, y_tr), val=(x_va, y_va))


def healthy_regression_l1() -> Task:
    return _diabetes(
        lambda p: nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1)), loss="l1"
    )


def healthy_log_softmax_nll() -> Task:
    return _digits(
        build=lambda p: nn.Sequential(MLP(64, p["dropout"]), nn.LogSoftmax(dim=-1)), loss="nll"
    )


def labels_scaled_with_pixels() -> Task:
    """The images and the labels both divided by 255 (the labels become 0.0039, 0.0078...)."""
    x_tr, x_va, y_tr, y_va = digits_split()
    return _digits(
        train=(x_tr / 255.0, (y_tr / 255.0).astype(np.float32)),
        val=(x_va / 255.0, (y_va / 255.0).astype(np.float32)),
    )


def labels_cast_to_one_class() -> Task:
    """The same, then cast back to integers: every label is class 0."""
    x_tr, x_va, y_tr, y_va = digits_split()
    return _digits(
        train=(x_tr, (y_tr / 255.0).astype(np.int64)),
        val=(x_va, (y_va / 255.0).astype(np.int64)),
    )


def multilabel_declared_binary() -> Task:
    """Four yes/no labels per digit (even, > 4, prime, round) declared kind="binary"."""
    x_tr, x_va, y_tr, y_va = digits_split()

    def sets(y: np.ndarray) -> np.ndarray:
        cols = [y % 2 == 0, y > 4, np.isin(y, [2, 3, 5, 7]), np.isin(y, [0, 6, 8, 9])]
        return np.stack(cols, axis=1).astype(np.float32)

    return Task(
        build_model=lambda p: nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4)),
        train=(x_tr, sets(y_tr)),
        val=(x_va, sets(y_va)),
        loss=nn.BCEWithLogitsLoss(),
        kind="binary",
    )


# -- a last activation that does not fit the loss: named as that mismatch, first ------------------
def mae_on_sigmoid_binary() -> Task:
    # MAE on probabilities for 0/1 labels: a confident mistake gets almost no gradient
    return _binary(
        lambda p: nn.Sequential(
            nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 1), nn.Sigmoid(), nn.Flatten(0)
        ),
        loss="l1",
    )


def relu_on_binary_logits() -> Task:
    return _binary(
        lambda p: nn.Sequential(
            nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 1), nn.ReLU(), nn.Flatten(0)
        )
    )


def relu_on_class_logits() -> Task:
    return _digits(lambda p: nn.Sequential(MLP(64, p["dropout"]), nn.ReLU()))


def _two_labels() -> tuple[np.ndarray, ...]:
    """Digits with two labels each: the digit and its successor (a multi-label target)."""
    x_tr, x_va, y_tr, y_va = digits_split()
    two = [
        np.eye(10, dtype=np.float32)[y] + np.eye(10, dtype=np.float32)[(y + 1) % 10]
        for y in (y_tr, y_va)
    ]
    return x_tr, x_va, two[0], two[1]


def softmax_cross_entropy_on_multilabel() -> Task:
    x_tr, x_va, y_tr, y_va = _two_labels()
    return _digits(
        train=(x_tr, y_tr), val=(x_va, y_va), kind="multilabel", loss=nn.CrossEntropyLoss()
    )


class ArgmaxHead(nn.Module):
    """Returns the one-hot of its argmax: looks like scores, carries no gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.mlp = MLP(64, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.one_hot(self.mlp(x).argmax(1), 10).float()


def argmax_in_forward() -> Task:
    return _digits(lambda p: ArgmaxHead())


def healthy_multilabel_bce() -> Task:
    x_tr, x_va, y_tr, y_va = _two_labels()
    return _digits(train=(x_tr, y_tr), val=(x_va, y_va), kind="multilabel", loss="bce")


# case -> the probe that must name its cause
BROKEN: dict[Callable[[], Task], str] = {
    multilabel_declared_binary: "labels_in_range",
    labels_scaled_with_pixels: "labels_in_range",
    labels_cast_to_one_class: "class_balance",
    unnormalized_inputs: "data_scale",
    zeroed_inputs: "constant_features",
    misaligned_labels: "short_fit_vs_baseline",
    all_zero_init: "degenerate_output",
    init_std_too_large: "init_loss",
    softmax_before_cross_entropy: "output_activation_vs_loss",
    relu_on_regression_output: "output_range",
    raw_logits_into_nll: "output_activation_vs_loss",
    frozen_layer: "gradient_flow",
    detached_layer: "gradient_flow",
    batch_mixing_layer: "batch_independence",
    nan_in_data: "data_finite",
    labels_out_of_range: "labels_in_range",
    train_val_overlap: "train_val_overlap",
    sorted_unshuffled_labels: "data_order",
    dropout_at_eval: "eval_determinism",
    mse_output_target_broadcast: "loss_shapes",
    l1_flat_output_column_target: "loss_shapes",
    sigmoid_then_bce_with_logits: "output_activation_vs_loss",
    logits_into_bce_loss: "output_activation_vs_loss",
    bce_with_two_outputs: "loss_shapes",
    single_logit_cross_entropy: "degenerate_output",
    unscaled_regression_targets: "target_scale",
    too_few_outputs: "loss_shapes",
    view_flattens_batch: "loss_shapes",
    log_softmax_over_batch: "output_activation_vs_loss",
    vanishing_sigmoid_stack: "gradient_depth",
    exploding_deep_relu: "gradient_depth",
    dead_relu_negative_bias: "weight_init",
    unscaled_tabular_features: "data_scale",
    gru_without_batch_first: "batch_independence",
    mae_on_sigmoid_binary: "output_activation_vs_loss",
    relu_on_binary_logits: "output_activation_vs_loss",
    relu_on_class_logits: "output_activation_vs_loss",
    softmax_cross_entropy_on_multilabel: "output_activation_vs_loss",
    argmax_in_forward: "output_activation_vs_loss",
}
HEALTHY: list[Callable[[], Task]] = [
    healthy_mlp,
    healthy_cnn_batchnorm,
    healthy_label_smoothing,
    healthy_imbalanced_binary_bce,
    healthy_regression_mse,
    healthy_deep_residual,
    healthy_embedding_tokens,
    healthy_gru_sequence,
    healthy_conv1d_sequence,
    healthy_small_transformer,
    healthy_prior_bias_imbalanced,
    healthy_regression_l1,
    healthy_log_softmax_nll,
    healthy_multilabel_bce,
]


# -- causes the real-models issue found missed (label leakage, a repeating loader, a loss that
# saturates on probabilities) --------------------------------------------------------------
def label_among_features() -> Task:
    x_tr, x_va, y_tr, y_va = digits_split()

    def add(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.concatenate([x, ((y - 4.5) / 2.9)[:, None].astype(np.float32)], axis=1)

    return _digits(
        build=lambda p: nn.Sequential(nn.Linear(65, 64), nn.ReLU(), nn.Linear(64, 10)),
        train=(add(x_tr, y_tr), y_tr),
        val=(add(x_va, y_va), y_va),
    )


class PositionTagger(nn.Module):
    """A token id per position in, a distribution over the 17 ids per position out."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(17, 16)
        self.mix = nn.Linear(64 * 16, 64 * 16)
        self.out = nn.Linear(16, 17)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.mix(self.emb(ids).flatten(1)).view(len(ids), 64, 16)
        return self.out(F.relu(h))


def targets_not_shifted() -> Task:
    # a sequence model whose targets are its own inputs (no shift by one)
    x_tr, x_va, _, _ = _tokens()
    return Task(
        build_model=lambda p: PositionTagger(), train=(x_tr, x_tr), val=(x_va, x_va), num_classes=17
    )


class RepeatingDataset(torch.utils.data.Dataset):
    """__getitem__ re-seeds its RNG on every call: every index gives one of a few rows."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng(0)  # the bug: a fixed seed, not one per index
        j = int(rng.integers(0, 5)) + i % 3
        return torch.as_tensor(self.x[j]), torch.as_tensor(self.y[j])


def dataset_repeats_rows() -> Task:
    x_tr, x_va, y_tr, y_va = digits_split()
    return _digits(train=RepeatingDataset(x_tr, y_tr), val=(x_va, y_va))


def mse_on_softmax_outputs() -> Task:
    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out, F.one_hot(y, 10).float())

    return _digits(
        build=lambda p: nn.Sequential(MLP(64, p["dropout"]), nn.Softmax(dim=-1)), loss=loss
    )


def softmax_into_custom_cross_entropy() -> Task:
    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))

    return _digits(
        build=lambda p: nn.Sequential(MLP(64, p["dropout"]), nn.Softmax(dim=-1)), loss=loss
    )


def regression_on_class_ids() -> Task:
    x_tr, x_va, y_tr, y_va = digits_split()
    return Task(
        build_model=lambda p: nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1)),
        train=(x_tr, y_tr.astype("f4")),
        val=(x_va, y_va.astype("f4")),
        loss="mse",
        kind="regression",
    )


BROKEN.update(
    {
        label_among_features: "label_leakage",
        targets_not_shifted: "label_leakage",
        dataset_repeats_rows: "duplicate_samples",
        mse_on_softmax_outputs: "output_activation_vs_loss",
        softmax_into_custom_cross_entropy: "output_activation_vs_loss",
    }
)
# flagged with a warning (ambiguous on their own), never passed in silence: case -> probe
FLAGGED: dict[Callable[[], Task], str] = {regression_on_class_ids: "target_scale"}


def noisy_training_labels() -> Task:
    # 40% of the training labels flipped to another class; validation labelled right
    x_tr, x_va, y_tr, y_va = digits_split()
    rng = np.random.default_rng(0)
    flip = rng.random(len(y_tr)) < 0.4
    noisy = np.where(flip, (y_tr + rng.integers(1, 10, len(y_tr))) % 10, y_tr)
    return _digits(train=(x_tr, noisy), val=(x_va, y_va))


BROKEN[noisy_training_labels] = "label_noise"
