"""Silent training bugs from public bug reports, each a user's own loop in two versions: as
reported (the bug) and as fixed. A case counts only when the check named stops or flags the
buggy loop and spares the fixed one. The reports are PyTorch, Hugging Face, Lightning, mmcv
and other projects' issues and forum threads (several are TrainCheck's reproductions); the
loops are shrunk to scikit-learn's digits so that each runs in about a second on a CPU.

Add a case with `@case(source, check)` on a function `(trial, fixed) -> None` that builds its
model and runs `loop` (or its own loop) with the bug when `fixed` is False.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sweeper.examples.digits import digits_split

X_TR, X_VA, Y_TR, Y_VA = (torch.as_tensor(a) for a in digits_split())
EPOCHS = 3


@dataclass(frozen=True)
class SilentBug:
    name: str
    source: str  # the public report the bug comes from
    check: str  # the trial check that must name it
    run: Callable[[Any, bool], None]  # (trial, fixed)


CASES: dict[str, SilentBug] = {}


def case(source: str, check: str) -> Callable[[Callable[[Any, bool], None]], Any]:
    def add(fn: Callable[[Any, bool], None]) -> Callable[[Any, bool], None]:
        CASES[fn.__name__] = SilentBug(fn.__name__, source, check, fn)
        return fn

    return add


# -- the loop most reports share: train, then validate, each epoch -------------------------------
def loop(
    trial: Any,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    *,
    epochs: int = EPOCHS,
    train_call: bool = True,  # model.train() at each epoch's start
    eval_call: bool = True,  # model.eval() before validating
    zero_grad: Callable[[], None] | None = None,  # default: opt.zero_grad()
    scheduler: Any = None,
    per_batch: bool = False,  # the scheduler steps every batch
    on_epoch: Callable[[int], None] | None = None,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    validate_first: bool = False,
    batch: int = 64,
) -> None:
    call = forward or model
    trial.watch(model, opt)

    def validate() -> dict[str, float]:
        if eval_call:
            model.eval()
        with torch.no_grad():
            out = call(X_VA).float()
            return {
                "val_loss": float(F.cross_entropy(out, Y_VA)),
                "val_accuracy": float((out.argmax(1) == Y_VA).float().mean()),
            }

    if validate_first:
        validate()
    for epoch in range(epochs):
        if on_epoch is not None:
            on_epoch(epoch)
        if train_call:
            model.train()
        order = torch.randperm(len(X_TR), generator=torch.Generator().manual_seed(epoch))
        total = 0.0
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            if zero_grad is None:
                opt.zero_grad()
            else:
                zero_grad()
            loss = F.cross_entropy(call(X_TR[idx]).float(), Y_TR[idx])
            loss.backward()
            opt.step()
            if scheduler is not None and per_batch:
                scheduler.step()
            total += float(loss.detach()) * len(idx)
        if scheduler is not None and not per_batch:
            scheduler.step()
        trial.report({"train_loss": total / len(X_TR), **validate()})


def mlp(hidden: int = 64, p: float = 0.0, bn: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(64, hidden)]
    if bn:
        layers.append(nn.BatchNorm1d(hidden))
    layers.append(nn.ReLU())
    if p:
        layers.append(nn.Dropout(p))
    layers.append(nn.Linear(hidden, 10))
    return nn.Sequential(*layers)


def adam(model: nn.Module, lr: float = 1e-3, **kw: Any) -> torch.optim.Optimizer:
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr, **kw)


class Tokens(nn.Module):
    """A digit as a sequence of its 8 rows (8 features each), attention over the rows."""

    def __init__(self, gated: bool, p: float = 0.3) -> None:
        super().__init__()
        self.gated, self.p = gated, p
        self.embed = nn.Linear(8, 32)
        self.qkv = nn.Linear(32, 96)
        self.proj = nn.Linear(32, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x.view(-1, 8, 8))
        q, k, v = self.qkv(h).view(-1, 8, 3, 4, 8).permute(2, 0, 3, 1, 4)
        p = self.p if self.training or not self.gated else 0.0
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        h = h + self.proj(a.transpose(1, 2).reshape(-1, 8, 32))
        return self.head(h.mean(1))


# -- stochastic layers active at evaluation ------------------------------------------------------
@case("https://github.com/huggingface/transformers/pull/33844", "eval_stochastic")
def attention_dropout_at_eval(trial: Any, fixed: bool) -> None:
    """M2M100's FlashAttention2 passed its dropout to the kernel in eval mode too."""
    torch.manual_seed(0)
    model = Tokens(gated=fixed)
    loop(trial, model, adam(model))


@case("https://github.com/pytorch/pytorch/issues/26338", "eval_stochastic")
def functional_dropout(trial: Any, fixed: bool) -> None:
    """F.dropout(x) in forward: model.eval() does not turn it off."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(64, 64), nn.Linear(64, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = F.relu(self.fc1(x))
            h = F.dropout(h, 0.5, training=self.training) if fixed else F.dropout(h)
            return self.fc2(h)

    torch.manual_seed(0)
    model = Net()
    loop(trial, model, adam(model))


@case("https://github.com/Coderx7/SimpleNet/issues/2", "eval_stochastic")
def dropout2d_training_true(trial: Any, fixed: bool) -> None:
    """SimpleNet's forward called F.dropout2d(out, 0.1, training=True)."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU())
            self.classifier = nn.Linear(16, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.features(x.view(-1, 1, 8, 8))
            out = F.max_pool2d(out, kernel_size=out.size()[2:])
            out = F.dropout2d(out, 0.1, training=self.training if fixed else True)
            return self.classifier(out.flatten(1))

    torch.manual_seed(0)
    model = Net()
    loop(trial, model, adam(model, 3e-3))


@case("https://github.com/rixwew/pytorch-fm/issues/21", "eval_stochastic")
def attention_scores_dropout(trial: Any, fixed: bool) -> None:
    """An attentional pooling's F.dropout(attn_scores, p=0.1) without training=."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(8, 16)
            self.score = nn.Linear(16, 1)
            self.head = nn.Linear(16, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.tanh(self.embed(x.view(-1, 8, 8)))
            scores = torch.softmax(self.score(h), dim=1)
            if fixed:
                scores = F.dropout(scores, p=0.1, training=self.training)
            else:
                scores = F.dropout(scores, p=0.1)
            return self.head((scores * h).sum(1))

    torch.manual_seed(0)
    model = Net()
    loop(trial, model, adam(model, 3e-3))


@case("https://github.com/wolny/pytorch-3dunet/issues/53", "eval_stochastic")
def validation_without_eval(trial: Any, fixed: bool) -> None:
    """Validation under torch.no_grad() only: dropout and BatchNorm stay in train mode."""
    torch.manual_seed(0)
    model = mlp(p=0.3, bn=True)
    loop(trial, model, adam(model), eval_call=fixed)


@case("https://github.com/ando-khachatryan/HiDDeN/issues/13", "eval_stochastic")
def batchnorm_validated_in_train_mode(trial: Any, fixed: bool) -> None:
    """A BatchNorm network validated without eval(): its statistics come from the batch."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(512, 10),
    )
    loop(trial, model, adam(model), eval_call=fixed)


# -- state that depends on train/eval order ------------------------------------------------------
@case("https://github.com/pytorch/pytorch/issues/51800", "eval_before_train")
def spectral_norm_evaluated_first(trial: Any, fixed: bool) -> None:
    """spectral_norm's power iteration runs only in train mode: a model evaluated before its
    first training forward is normalised by a random vector."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.utils.spectral_norm(nn.Linear(64, 64)),
        nn.ReLU(),
        nn.utils.spectral_norm(nn.Linear(64, 10)),
    )
    if fixed:  # the report's fix: one train-mode forward before evaluating
        with torch.no_grad():
            model.train()(X_TR[:64])
    loop(trial, model, adam(model, 3e-3), validate_first=True)


@case("https://github.com/fartashf/vsepp/issues/4", "eval_mode_training")
def train_mode_not_restored(trial: Any, fixed: bool) -> None:
    """Validation sets eval mode, and nothing sets train mode again until the next epoch
    (here: ever)."""
    torch.manual_seed(0)
    model = mlp(p=0.3, bn=True)
    loop(trial, model, adam(model), train_call=fixed)


# -- freezing or unfreezing that does not take effect --------------------------------------------
class StagedNet(nn.Module):
    """mmcls-style: `frozen_stages` is applied in train(), not in __init__."""

    def __init__(self, frozen_stages: int = 1) -> None:
        super().__init__()
        self.frozen_stages = frozen_stages
        self.stage1 = nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)

    def _freeze_stages(self) -> None:
        for i in range(1, self.frozen_stages + 1):
            stage = getattr(self, f"stage{i}")
            stage.eval()
            for p in stage.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> StagedNet:
        super().train(mode)
        self._freeze_stages()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stage2(self.stage1(x)))


@case("https://github.com/open-mmlab/mmpretrain/issues/702", "train_not_called")
def frozen_stages_never_applied(trial: Any, fixed: bool) -> None:
    torch.manual_seed(0)
    model = StagedNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    # the buggy loop never calls model.train(); the fixed one does at each epoch
    loop(trial, model, opt, train_call=fixed, eval_call=fixed)


@case("https://github.com/facebookresearch/fairseq/issues/4702", "frozen_updated")
def frozen_but_adam_moves_it(trial: Any, fixed: bool) -> None:
    """fc1 frozen after the first epoch by requires_grad=False, while Adam (which holds it and
    its moments) steps on a zeroed, not None, gradient."""
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def freeze(epoch: int) -> None:
        if epoch == 1:
            for p in model[0].parameters():
                p.requires_grad = False
                if fixed:
                    p.grad = None

    loop(
        trial,
        model,
        opt,
        on_epoch=freeze,
        zero_grad=(lambda: opt.zero_grad(set_to_none=False)),
    )


@case("https://github.com/open-mmlab/OpenPCDet/issues/845", "frozen_updated")
def frozen_but_weight_decay_shrinks_it(trial: Any, fixed: bool) -> None:
    """A layer frozen mid-training still decays under SGD's weight decay and momentum while
    its gradient is zeroed rather than set to None; the fix zeroes with set_to_none=True."""
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)

    def freeze(epoch: int) -> None:
        if epoch == 1:
            for p in model[0].parameters():
                p.requires_grad = False

    loop(trial, model, opt, on_epoch=freeze, zero_grad=lambda: opt.zero_grad(set_to_none=fixed))


@case("https://github.com/ifzhang/FairMOT/issues/125", "unheld_params")
def classifier_left_out_of_optimizer(trial: Any, fixed: bool) -> None:
    """The optimizer is built over the backbone; the classifier added beside it never trains."""
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("backbone", nn.Sequential(nn.Linear(64, 64), nn.ReLU()))
    model.add_module("classifier", nn.Linear(64, 10))
    params = model.parameters() if fixed else model.backbone.parameters()
    loop(trial, model, torch.optim.Adam(params, lr=1e-3))


@case("https://github.com/microsoft/nni/issues/4521", "unheld_params")
def layer_replaced_after_optimizer(trial: Any, fixed: bool) -> None:
    """A pruning speed-up replaces layers with smaller ones after the optimizer was built."""
    torch.manual_seed(0)
    model = mlp(hidden=128)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model[0] = nn.Linear(64, 128)  # the "speed-up" gives the first layer a fresh module
    if fixed:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loop(trial, model, opt)


@case("https://discuss.pytorch.org/t/best-practice-for-freezing-layers/58156", "unheld_params")
def unfrozen_but_not_in_optimizer(trial: Any, fixed: bool) -> None:
    """Fine-tuning: the first layer frozen, the optimizer built over what trains, the layer
    unfrozen at epoch 1 without adding it to the optimizer."""
    torch.manual_seed(0)
    model = mlp()
    for p in model[0].parameters():
        p.requires_grad = False
    opt = adam(model)

    def unfreeze(epoch: int) -> None:
        if epoch == 1:
            for p in model[0].parameters():
                p.requires_grad = True
            if fixed:
                opt.add_param_group({"params": list(model[0].parameters()), "lr": 1e-4})

    loop(trial, model, opt, on_epoch=unfreeze)


# -- updates silently dropped --------------------------------------------------------------------
@case(
    "https://discuss.pytorch.org/t/obtaining-abnormal-changes-in-loss-and-accuracy/84911",
    "stale_optimizer",
)
def optimizer_over_frozen_head(trial: Any, fixed: bool) -> None:
    """Everything but the BatchNorm layers frozen, and the optimizer given only the final
    fully connected layer, which is frozen too (TrainCheck's 5-minute tutorial)."""
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("conv", nn.Linear(64, 64))
    model.add_module("bn", nn.BatchNorm1d(64))
    model.add_module("act", nn.ReLU())
    model.add_module("fc", nn.Linear(64, 10))
    for name, p in model.named_parameters():
        if "bn" not in name and not (fixed and name.startswith("fc")):
            p.requires_grad = False
    loop(trial, model, torch.optim.Adam(model.fc.parameters(), lr=1e-3))


@case("https://github.com/pytorch/pytorch/issues/54765", "stale_optimizer")
def network_replaced_after_optimizer(trial: Any, fixed: bool) -> None:
    """The network is swapped for another after its optimizer was made."""
    torch.manual_seed(0)
    net = mlp()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net = mlp(hidden=96)
    if fixed:
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loop(trial, net, opt)


@case(
    "https://stackoverflow.com/questions/60335387/pytorch-mnist-example-not-converge",
    "grad_not_zeroed",
)
def zero_grad_missing(trial: Any, fixed: bool) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(1024, 10),
    )
    opt = adam(model, 1e-4)
    loop(trial, model, opt, zero_grad=None if fixed else (lambda: None))


@case("https://github.com/wenet-e2e/wekws/pull/73", "grad_not_zeroed")
def zero_grad_missing_in_recurrent_trainer(trial: Any, fixed: bool) -> None:
    """A keyword-spotting trainer's executor stepped without ever zeroing."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru = nn.GRU(8, 32, batch_first=True)
            self.out = nn.Linear(32, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h, _ = self.gru(x.view(-1, 8, 8))
            return self.out(h[:, -1])

    torch.manual_seed(0)
    model = Net()
    opt = adam(model, 3e-3)
    loop(trial, model, opt, zero_grad=None if fixed else (lambda: None))


@case("https://github.com/Hsintien-Ng/idinvert_pytorch-reproduced/issues/1", "grad_not_zeroed")
def gan_discriminator_never_zeroed(trial: Any, fixed: bool) -> None:
    """optimizer_D.zero_grad() missing before the discriminator's backward."""
    torch.manual_seed(0)
    real = X_TR[:512]
    gen = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.Sigmoid())
    disc = nn.Sequential(nn.Linear(64, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    trial.watch(gen, opt_g)
    trial.watch(disc, opt_d)
    bce = nn.BCEWithLogitsLoss()
    for _ in range(EPOCHS):
        total = 0.0
        for i in range(0, len(real), 32):
            x = real[i : i + 32]
            fake = gen(torch.randn(len(x), 16))
            if fixed:
                opt_d.zero_grad()
            d_loss = bce(disc(x), torch.ones(len(x), 1)) + bce(
                disc(fake.detach()), torch.zeros(len(x), 1)
            )
            d_loss.backward()
            opt_d.step()
            opt_g.zero_grad()
            g_loss = bce(disc(fake), torch.ones(len(x), 1))
            g_loss.backward()
            opt_g.step()
            total += float(d_loss.detach())
        trial.report({"train_loss": total / math.ceil(len(real) / 32)})


@case("https://github.com/leftthomas/SRGAN/issues/94", "lr_schedule")
def step_lr_stepped_every_batch(trial: Any, fixed: bool) -> None:
    """StepLR(step_size=epochs // 2, gamma=0.1) meant per epoch, stepped per batch: the lr is
    nothing after a few batches."""
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, EPOCHS // 2), gamma=0.1)
    loop(trial, model, opt, scheduler=sched, per_batch=not fixed)


# -- precision not applied where the user asked for it -------------------------------------------
@case("https://github.com/Lightning-AI/lightning-thunder/issues/725", "autocast_coverage")
def layers_outside_autocast(trial: Any, fixed: bool) -> None:
    """Mixed precision asked for, but the classifier runs outside the autocast region (the
    thunder regression left linear layers in float32 inside it)."""
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("features", nn.Sequential(nn.Linear(64, 128), nn.ReLU()))
    model.add_module("classifier", nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)))

    def amp() -> torch.autocast:
        return torch.autocast("cpu", dtype=torch.bfloat16)

    def forward(x: torch.Tensor) -> torch.Tensor:
        if fixed:
            with amp():
                return model(x)
        with amp():
            h = model.features(x)
        return model.classifier(h.float())

    loop(trial, model, adam(model), forward=forward)
