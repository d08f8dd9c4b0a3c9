"""Clean training pipelines from pytorch/examples and PyTorch's recipes, shrunk to a CPU and a
few seconds, each as its project writes it: its model, optimizer, lr, loss and loop shape
(hand-written updates, several models, one-row actions, mixed precision, float64). The trial
monitor must stop none of them and warn at most once each. Data are made here or are
scikit-learn's digits; nothing is downloaded.

Add a pipeline with `@pipeline("where it comes from")` on a function `(trial) -> None`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sweeper.examples.digits import digits_split

X_TR, X_VA, Y_TR, Y_VA = (torch.as_tensor(a) for a in digits_split())
EPOCHS = 3

PIPELINES: dict[str, tuple[str, Callable[[Any], None]]] = {}


def pipeline(source: str) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
    def add(fn: Callable[[Any], None]) -> Callable[[Any], None]:
        PIPELINES[fn.__name__] = (source, fn)
        return fn

    return add


def _batches(n: int, size: int, epoch: int) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch))
    return [order[i : i + size] for i in range(0, n, size)]


def _classify(
    trial: Any,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    *,
    sched: Any = None,
    batch: int = 64,
    x: torch.Tensor = X_TR,
    x_va: torch.Tensor = X_VA,
    loss_fn: Callable[..., torch.Tensor] = F.cross_entropy,
) -> None:
    """pytorch/examples' mnist shape: train, test under eval + no_grad, step the schedule."""
    trial.watch(model, opt)
    for epoch in range(EPOCHS):
        model.train()
        total = 0.0
        for idx in _batches(len(x), batch, epoch):
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), Y_TR[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        with torch.no_grad():
            out = model(x_va)
            val = {
                "val_loss": float(loss_fn(out, Y_VA)),
                "val_accuracy": float((out.argmax(1) == Y_VA).float().mean()),
            }
        if sched is not None:
            sched.step()
        trial.report({"train_loss": total / len(x), **val})


@pipeline("pytorch/examples mnist/main.py (Net, Adadelta lr 1.0, StepLR gamma 0.7)")
def mnist_cnn(trial: Any) -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 16, 3, 1), nn.Conv2d(16, 32, 3, 1)
            self.dropout1, self.dropout2 = nn.Dropout(0.25), nn.Dropout(0.5)
            self.fc1, self.fc2 = nn.Linear(32 * 2 * 2, 64), nn.Linear(64, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = F.relu(self.conv1(x.view(-1, 1, 8, 8)))
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = torch.flatten(self.dropout1(x), 1)
            x = self.dropout2(F.relu(self.fc1(x)))
            return F.log_softmax(self.fc2(x), dim=1)

    torch.manual_seed(1)
    model = Net()
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    _classify(trial, model, opt, sched=sched, loss_fn=F.nll_loss)


@pipeline("pytorch/examples regression/main.py (polynomial fit, updates by hand, lr 0.1)")
def polynomial_regression(trial: Any) -> None:
    torch.manual_seed(0)
    w_target, b_target = torch.randn(4, 1) * 5, torch.randn(1) * 5

    def batch(size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(size).unsqueeze(1)
        feats = torch.cat([x**i for i in range(1, 5)], 1)
        return feats, feats @ w_target + b_target

    fc = nn.Linear(4, 1)
    trial.watch(fc)
    for _ in range(EPOCHS):
        total = 0.0
        for _ in range(60):
            x, y = batch()
            fc.zero_grad()
            loss = F.smooth_l1_loss(fc(x), y)
            loss.backward()
            for p in fc.parameters():
                p.data.add_(-0.1 * p.grad)
            trial.step(loss)
            total += float(loss.detach())
        trial.report({"train_loss": total / 60})


@pipeline("pytorch/examples regression with torch.optim.SGD(lr=0.1) instead of the hand update")
def polynomial_regression_sgd(trial: Any) -> None:
    torch.manual_seed(0)
    w_target, b_target = torch.randn(4, 1) * 5, torch.randn(1) * 5
    fc = nn.Linear(4, 1)
    opt = torch.optim.SGD(fc.parameters(), lr=0.1)
    trial.watch(fc, opt)
    for _ in range(EPOCHS):
        total = 0.0
        for _ in range(60):
            x = torch.randn(32, 1)
            feats = torch.cat([x**i for i in range(1, 5)], 1)
            opt.zero_grad()
            loss = F.smooth_l1_loss(fc(feats), feats @ w_target + b_target)
            loss.backward()
            opt.step()
            total += float(loss.detach())
        trial.report({"train_loss": total / 60})


@pipeline("pytorch/examples vae/main.py (MLP VAE, Adam 1e-3, BCE + KLD summed)")
def vae(trial: Any) -> None:
    class VAE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc21, self.fc22 = nn.Linear(64, 64), nn.Linear(64, 8), nn.Linear(64, 8)
            self.fc3, self.fc4 = nn.Linear(8, 64), nn.Linear(64, 64)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            h = F.relu(self.fc1(x))
            mu, logvar = self.fc21(h), self.fc22(h)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
            return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar

    def loss_fn(x: torch.Tensor) -> torch.Tensor:
        recon, mu, logvar = model(x)
        bce = F.binary_cross_entropy(recon, x, reduction="sum")
        return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())

    torch.manual_seed(1)
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    trial.watch(model, opt)
    lo, hi = X_TR.min(), X_TR.max()
    data, val = (X_TR - lo) / (hi - lo), ((X_VA - lo) / (hi - lo)).clamp(0, 1)
    for epoch in range(EPOCHS):
        model.train()
        total = 0.0
        for idx in _batches(len(data), 128, epoch):
            opt.zero_grad()
            loss = loss_fn(data[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach())
        model.eval()
        with torch.no_grad():
            test = float(loss_fn(val))
        trial.report({"train_loss": total / len(data), "val_loss": test / len(val)})


@pipeline("pytorch/examples dcgan/main.py (BatchNorm G and D, Adam 2e-4 betas 0.5)")
def dcgan(trial: Any) -> None:
    torch.manual_seed(0)
    gen = nn.Sequential(
        nn.Linear(16, 64), nn.BatchNorm1d(64), nn.ReLU(True), nn.Linear(64, 64), nn.Tanh()
    )
    disc = nn.Sequential(nn.Linear(64, 64), nn.LeakyReLU(0.2, inplace=True), nn.Linear(64, 1))
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    trial.watch(gen, opt_g)
    trial.watch(disc, opt_d)
    bce = nn.BCEWithLogitsLoss()
    real_all = X_TR / 8.0 - 1.0
    fixed_noise = torch.randn(16, 16)
    for epoch in range(EPOCHS):
        total = 0.0
        for idx in _batches(len(real_all), 64, epoch):
            real = real_all[idx]
            disc.zero_grad()
            fake = gen(torch.randn(len(real), 16))
            err_d = bce(disc(real), torch.ones(len(real), 1)) + bce(
                disc(fake.detach()), torch.zeros(len(real), 1)
            )
            err_d.backward()
            opt_d.step()
            gen.zero_grad()
            err_g = bce(disc(fake), torch.ones(len(real), 1))
            err_g.backward()
            opt_g.step()
            total += float(err_g.detach())
        gen(fixed_noise).detach()  # the example's image grid, in train mode with gradients
        trial.report({"train_loss": total / math.ceil(len(real_all) / 64)})


def _graph(n: int = 300, classes: int = 4) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, classes, (n,), generator=g)
    feats = F.one_hot(labels, classes).float() + 0.8 * torch.randn(n, classes, generator=g)
    feats = torch.cat([feats, torch.randn(n, 12, generator=g)], 1)
    same = labels[:, None] == labels[None, :]
    p = torch.where(same, 0.05, 0.005)
    adj = (torch.rand(n, n, generator=g) < p).float()
    adj = ((adj + adj.T) > 0).float() + torch.eye(n)
    deg = adj.sum(1)
    norm = adj / torch.sqrt(deg[:, None] * deg[None, :])
    return feats, norm, labels


@pipeline("pytorch/examples gcn/main.py (two GCN layers, dropout 0.5, Adam 1e-2, wd 5e-4)")
def gcn(trial: Any) -> None:
    class GCN(nn.Module):
        def __init__(self, adj: torch.Tensor) -> None:
            super().__init__()
            self.adj = adj
            self.l1, self.l2 = nn.Linear(16, 16), nn.Linear(16, 4)
            self.drop = nn.Dropout(0.5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.drop(F.relu(self.adj @ self.l1(x)))
            return F.log_softmax(self.adj @ self.l2(h), dim=1)

    torch.manual_seed(0)
    feats, adj, labels = _graph()
    train, val = torch.arange(0, 200), torch.arange(200, 300)
    model = GCN(adj)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=5e-4)
    trial.watch(model, opt)
    for _ in range(EPOCHS):
        for _ in range(20):  # the example: one full-graph step per "epoch"
            model.train()
            opt.zero_grad()
            loss = F.nll_loss(model(feats)[train], labels[train])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            out = model(feats)
        trial.report(
            {
                "train_loss": float(loss.detach()),
                "val_loss": float(F.nll_loss(out[val], labels[val])),
                "val_accuracy": float((out[val].argmax(1) == labels[val]).float().mean()),
            }
        )


class Walk:
    """A 1-D walk to a goal at +5 (CartPole is not shipped): state is the position and a
    bias, actions step left or right; reward 1 at the goal, episodes end there or at 30 steps."""

    def __init__(self, seed: int) -> None:
        self.g = torch.Generator().manual_seed(seed)
        self.pos = 0

    def reset(self) -> torch.Tensor:
        self.pos = int(torch.randint(-2, 3, (1,), generator=self.g))
        return self.state()

    def state(self) -> torch.Tensor:
        return torch.tensor([self.pos / 5.0, 1.0, float(self.pos > 0), float(self.pos < 0)])

    def step(self, action: int) -> tuple[torch.Tensor, float, bool]:
        self.pos += 1 if action == 1 else -1
        done = self.pos >= 5 or self.pos <= -8
        return self.state(), 1.0 if self.pos >= 5 else -0.01, done


@pipeline("pytorch/examples reinforcement_learning/reinforce.py (dropout 0.6, Adam 1e-2)")
def reinforce(trial: Any) -> None:
    class Policy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.affine1, self.dropout = nn.Linear(4, 128), nn.Dropout(p=0.6)
            self.affine2 = nn.Linear(128, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.softmax(self.affine2(F.relu(self.dropout(self.affine1(x)))), dim=1)

    torch.manual_seed(0)
    policy = Policy()
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    trial.watch(policy, opt)
    env = Walk(0)
    for _ in range(EPOCHS):
        returns = []
        for _ in range(15):
            state, log_probs, rewards = env.reset(), [], []
            for _ in range(30):
                probs = policy(state.unsqueeze(0))  # one row: the policy acts
                m = torch.distributions.Categorical(probs)
                action = m.sample()
                log_probs.append(m.log_prob(action))
                state, r, done = env.step(int(action))
                rewards.append(r)
                if done:
                    break
            g, rets = 0.0, []
            for r in reversed(rewards):
                g = r + 0.99 * g
                rets.insert(0, g)
            ret = torch.tensor(rets)
            ret = (ret - ret.mean()) / (ret.std() + 1e-6) if len(ret) > 1 else ret
            opt.zero_grad()
            loss = torch.stack([-lp * R for lp, R in zip(log_probs, ret, strict=True)]).sum()
            loss.backward()
            opt.step()
            returns.append(sum(rewards))
        trial.report({"reward": sum(returns) / len(returns)})


@pipeline("pytorch/examples reinforcement_learning/actor_critic.py (shared body, Adam 3e-2)")
def actor_critic(trial: Any) -> None:
    class Policy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.affine1 = nn.Linear(4, 128)
            self.action_head, self.value_head = nn.Linear(128, 2), nn.Linear(128, 1)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = F.relu(self.affine1(x))
            return F.softmax(self.action_head(h), dim=-1), self.value_head(h)

    torch.manual_seed(0)
    model = Policy()
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    trial.watch(model, opt)
    env = Walk(1)
    for _ in range(EPOCHS):
        returns = []
        for _ in range(15):
            state, saved, rewards = env.reset(), [], []
            for _ in range(30):
                probs, value = model(state)
                m = torch.distributions.Categorical(probs)
                action = m.sample()
                saved.append((m.log_prob(action), value))
                state, r, done = env.step(int(action))
                rewards.append(r)
                if done:
                    break
            g, rets = 0.0, []
            for r in reversed(rewards):
                g = r + 0.99 * g
                rets.insert(0, g)
            losses = [
                -lp * (R - v.item()) + F.smooth_l1_loss(v, torch.tensor([R]))
                for (lp, v), R in zip(saved, rets, strict=True)
            ]
            opt.zero_grad()
            torch.stack(losses).sum().backward()
            opt.step()
            returns.append(sum(rewards))
        trial.report({"reward": sum(returns) / len(returns)})


@pipeline("PyTorch recipes amp_recipe (Linear+ReLU stack, MSE, SGD lr 1e-3, autocast)")
def amp_recipe(trial: Any) -> None:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(3):
        layers += [nn.Linear(256, 256), nn.ReLU()]
    net = nn.Sequential(*layers, nn.Linear(256, 256))
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    data = [torch.randn(64, 256) for _ in range(20)]
    targets = [torch.randn(64, 256) for _ in range(20)]
    trial.watch(net, opt)
    for _ in range(EPOCHS):
        total = 0.0
        for x, y in zip(data, targets, strict=True):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = F.mse_loss(net(x).float(), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            total += float(loss.detach())
        trial.report({"train_loss": total / len(data)})


@pipeline("the amp recipe's classifier variant: digits MLP under bf16 autocast, Adam 1e-3")
def amp_classifier(trial: Any) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss_fn(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.float(), y)

    class Amp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return self.inner(x)

    _classify(trial, Amp(), opt, loss_fn=loss_fn)


@pipeline("pytorch/examples mnist_forward_forward (layer-local goodness, Adam 0.03)")
def forward_forward(trial: Any) -> None:
    class Layer(nn.Linear):
        def goodness(self, x: torch.Tensor) -> torch.Tensor:
            x = x / (x.norm(2, 1, keepdim=True) + 1e-4)
            return F.relu(self(x)).pow(2).mean(1)

    def embed(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = x.clone() / 16.0
        x[:, :10] = 0
        x[range(len(x)), y] = 1.0
        return x

    torch.manual_seed(0)
    layers = nn.ModuleList([Layer(64, 100), Layer(100, 100)])
    opt = torch.optim.Adam(layers.parameters(), lr=0.03)
    trial.watch(layers, opt)
    for epoch in range(EPOCHS):
        total = 0.0
        for idx in _batches(len(X_TR), 256, epoch):
            pos = embed(X_TR[idx], Y_TR[idx])
            neg = embed(X_TR[idx], (Y_TR[idx] + torch.randint(1, 10, (len(idx),))) % 10)
            loss = torch.zeros(())
            for layer in layers:
                gp, gn = layer.goodness(pos), layer.goodness(neg)
                loss = loss + F.softplus(torch.cat([2.0 - gp, gn - 2.0])).mean()
                pos = F.relu(layer(pos / (pos.norm(2, 1, keepdim=True) + 1e-4))).detach()
                neg = F.relu(layer(neg / (neg.norm(2, 1, keepdim=True) + 1e-4))).detach()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        trial.report({"train_loss": total / 6})


@pipeline("pytorch/examples word_language_model (LSTM, tied weights, SGD lr 20, clip 0.25)")
def word_language_model(trial: Any) -> None:
    vocab, bptt, batch = 50, 12, 16
    g = torch.Generator().manual_seed(0)
    # a text with structure: each token is often the previous one plus one
    steps = torch.where(
        torch.rand(6000, generator=g) < 0.7, 1, torch.randint(0, vocab, (6000,), generator=g)
    )
    text = torch.cumsum(steps, 0) % vocab
    data = text[: (len(text) // batch) * batch].view(batch, -1).t()

    class RNNModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.drop = nn.Dropout(0.2)
            self.encoder = nn.Embedding(vocab, 32)
            self.rnn = nn.LSTM(32, 32, 2, dropout=0.2)
            self.decoder = nn.Linear(32, vocab)
            self.decoder.weight = self.encoder.weight

        def forward(self, x: torch.Tensor, h: Any) -> tuple[torch.Tensor, Any]:
            out, h = self.rnn(self.drop(self.encoder(x)), h)
            return self.decoder(self.drop(out)), h

    torch.manual_seed(0)
    model = RNNModel()
    lr = 20.0
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    trial.watch(model, opt)
    for _ in range(EPOCHS):
        model.train()
        h, total, n = None, 0.0, 0
        for i in range(0, len(data) - 1 - bptt, bptt):
            x, y = data[i : i + bptt], data[i + 1 : i + 1 + bptt]
            h = None if h is None else tuple(t.detach() for t in h)
            model.zero_grad()
            out, h = model(x, h)
            loss = F.cross_entropy(out.view(-1, vocab), y.reshape(-1))
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            opt.step()
            total, n = total + float(loss.detach()), n + 1
        trial.report({"train_loss": total / n})


@pipeline("pytorch/examples time_sequence_prediction (LSTMCell sines, float64, LBFGS lr 0.8)")
def time_sequence_lbfgs(trial: Any) -> None:
    class Sequence(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm1, self.lstm2 = nn.LSTMCell(1, 24), nn.LSTMCell(24, 24)
            self.linear = nn.Linear(24, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            outs = []
            h1 = c1 = torch.zeros(x.size(0), 24, dtype=torch.double)
            h2 = c2 = torch.zeros(x.size(0), 24, dtype=torch.double)
            for t in x.split(1, dim=1):
                h1, c1 = self.lstm1(t, (h1, c1))
                h2, c2 = self.lstm2(h1, (h2, c2))
                outs.append(self.linear(h2))
            return torch.cat(outs, dim=1)

    torch.manual_seed(0)
    t = torch.arange(60, dtype=torch.double)
    shifts = torch.randint(-20, 20, (24, 1)).double()
    waves = torch.sin((t + shifts) / 5.0)
    x, y = waves[:20, :-1], waves[:20, 1:]
    seq = Sequence().double()
    opt = torch.optim.LBFGS(seq.parameters(), lr=0.8)
    trial.watch(seq, opt)
    for _ in range(EPOCHS):

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = F.mse_loss(seq(x), y)
            loss.backward()
            return loss

        loss = opt.step(closure)
        with torch.no_grad():
            val = F.mse_loss(seq(waves[20:, :-1]), waves[20:, 1:])
        trial.report({"train_loss": float(loss.detach()), "val_loss": float(val)})


@pipeline("pytorch/examples siamese_network (pairs, BCE on similarity, Adadelta 1.0, StepLR)")
def siamese(trial: Any) -> None:
    class Siamese(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))
            self.fc = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.cat([self.body(a), self.body(b)], 1)).squeeze(1)

    torch.manual_seed(0)
    model = Siamese()
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    trial.watch(model, opt)
    x = X_TR / 16.0
    for epoch in range(EPOCHS):
        model.train()
        total = 0.0
        for idx in _batches(len(x), 64, epoch):
            other = idx[torch.randperm(len(idx))]
            target = (Y_TR[idx] == Y_TR[other]).float()
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(model(x[idx], x[other]), target)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        trial.report({"train_loss": total / len(x)})


@pipeline("pytorch/examples mnist with BatchNorm and a OneCycleLR stepped per batch")
def batchnorm_one_cycle(trial: Any) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(1024, 10),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    steps = EPOCHS * math.ceil(len(X_TR) / 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=steps)
    trial.watch(model, opt)
    for epoch in range(EPOCHS):
        model.train()
        total = 0.0
        for idx in _batches(len(X_TR), 64, epoch):
            opt.zero_grad()
            loss = F.cross_entropy(model(X_TR[idx]), Y_TR[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        with torch.no_grad():
            acc = float((model(X_VA).argmax(1) == Y_VA).float().mean())
        trial.report({"train_loss": total / len(X_TR), "val_accuracy": acc})


@pipeline("a fine-tune: frozen first layer (its BatchNorm kept in eval), a new head, AdamW")
def frozen_backbone_finetune(trial: Any) -> None:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU())
    head = nn.Linear(64, 10)
    model = nn.Sequential(backbone, head)
    for p in backbone.parameters():
        p.requires_grad = False
    opt = torch.optim.AdamW((p for p in model.parameters() if p.requires_grad), lr=3e-3)
    trial.watch(model, opt)
    for epoch in range(EPOCHS):
        model.train()
        backbone.eval()  # the frozen statistics stay as they are
        total = 0.0
        for idx in _batches(len(X_TR), 64, epoch):
            opt.zero_grad()
            loss = F.cross_entropy(model(X_TR[idx]), Y_TR[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        with torch.no_grad():
            val = float(F.cross_entropy(model(X_VA), Y_VA))
        trial.report({"train_loss": total / len(X_TR), "val_loss": val})


@pipeline("char-rnn style (practical-pytorch): an LSTM keeping its hidden state on self")
def hidden_state_on_self(trial: Any) -> None:
    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(8, 32, batch_first=True)
            self.out = nn.Linear(32, 10)
            self.hidden: tuple[torch.Tensor, torch.Tensor] | None = None

        def init_hidden(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.zeros(1, n, 32), torch.zeros(1, n, 32)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h, self.hidden = self.lstm(x.view(-1, 8, 8), self.hidden)  # state kept on self
            return self.out(h[:, -1])

    torch.manual_seed(0)
    model = Tagger()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    trial.watch(model, opt)
    for epoch in range(EPOCHS):
        model.train()
        total = 0.0
        for idx in _batches(len(X_TR), 64, epoch):
            model.hidden = model.init_hidden(len(idx))
            opt.zero_grad()
            loss = F.cross_entropy(model(X_TR[idx]), Y_TR[idx])
            loss.backward()
            opt.step()
            model.hidden = None
            total += float(loss.detach()) * len(idx)
        model.eval()
        with torch.no_grad():
            model.hidden = model.init_hidden(len(X_VA))
            model.hidden = (model.hidden[0] + 0.5, model.hidden[1])  # a warm state, as carried
            acc = float((model(X_VA).argmax(1) == Y_VA).float().mean())
        trial.report({"train_loss": total / len(X_TR), "val_accuracy": acc})
