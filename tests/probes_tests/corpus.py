"""The healthy corpus: real architectures, each set up the way its project trains it, that the
gate must pass without a failure. Hugging Face models are built from small configs (no
download); the others follow real projects' model code (pytorch/examples' word-language
model, kuangliu/pytorch-cifar's ResNet, torchvision's zero-init residuals, a U-Net) at a size
that trains in a test. Add a case by adding a function and its name in CORPUS.

Data are made here or shipped with a package: scikit-learn's digits, and real English text
from the docstrings of Python's standard library (a word-level language-model corpus whose
validation part holds words that training never shows, as wikitext's does).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from sweeper import Task
from sweeper.examples.digits import MLP, digits_split

# -- data ---------------------------------------------------------------------------------------
_TEXT_MODULES = (
    "argparse",
    "collections",
    "json",
    "logging",
    "os",
    "re",
    "subprocess",
    "typing",
    "unittest",
    "email.message",
    "http.client",
    "decimal",
    "datetime",
    "pathlib",
    "inspect",
    "shutil",
    "tarfile",
    "zipfile",
    "textwrap",
    "string",
    "functools",
    "itertools",
    "csv",
    "sqlite3",
    "threading",
    "queue",
    "socket",
    "ssl",
    "urllib.parse",
    "urllib.request",
    "xml.dom.minidom",
    "configparser",
    "difflib",
    "heapq",
    "bisect",
    "statistics",
    "random",
    "fractions",
    "calendar",
    "locale",
    "gettext",
    "codecs",
    "io",
    "tempfile",
    "glob",
    "fnmatch",
    "pickle",
    "copy",
    "pprint",
    "dataclasses",
    "contextlib",
    "abc",
    "enum",
    "weakref",
    "types",
)


@functools.cache
def text_tokens() -> tuple[list[str], dict[str, int]]:
    """Real English: the docstrings of a fixed list of standard-library modules and their
    members, as lower-case word and punctuation tokens, and the vocabulary over all of them
    (as pytorch/examples' data.py builds it over train, valid and test)."""
    words: list[str] = []
    seen: set[str] = set()  # builtins' docstrings come back in many modules: once each
    for name in _TEXT_MODULES:
        module = importlib.import_module(name)
        docs = [inspect.getdoc(module) or ""]
        for attr in sorted(dir(module)):
            if not attr.startswith("_"):
                docs.append(inspect.getdoc(getattr(module, attr, None)) or "")
        for doc in docs:
            if doc in seen:
                continue
            seen.add(doc)
            words += re.findall(r"[a-z]+|[0-9]+|[^\sa-z0-9]", doc.lower()) + ["<eos>"]
    vocab: dict[str, int] = {}
    for w in words:
        vocab.setdefault(w, len(vocab))
    return words, vocab


def lm_windows(length: int = 35, max_tokens: int = 16_000) -> tuple[Any, ...]:
    """(x_train, y_train, x_val, y_val, vocab size): windows of `length` token ids and the
    next token at each position; the last tenth of the text is validation."""
    words, _ = text_tokens()
    vocab: dict[str, int] = {}
    for w in words[:max_tokens]:  # over train and validation, as data.py's Corpus builds it
        vocab.setdefault(w, len(vocab))
    ids = torch.tensor([vocab[w] for w in words[:max_tokens]], dtype=torch.long)
    cut = int(0.9 * len(ids))

    def windows(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = (len(s) - 1) // length
        return s[: n * length].view(n, length), s[1 : n * length + 1].view(n, length)

    x_tr, y_tr = windows(ids[:cut])
    x_va, y_va = windows(ids[cut:])
    return x_tr, y_tr, x_va, y_va, len(vocab)


def images(size: int = 16, channels: int = 3) -> tuple[np.ndarray, ...]:
    """Digits upsampled to channels x size x size and standardized per channel with train
    statistics (the CIFAR recipe); the border stays near constant, as in real photos' frames."""
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 16
    x = F.interpolate(x, size=(size - 4, size - 4), mode="bilinear", align_corners=False)
    x = F.pad(x, (2, 2, 2, 2)).repeat(1, channels, 1, 1).numpy()
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    mean = x_tr.mean(axis=(0, 2, 3), keepdims=True)
    std = x_tr.std(axis=(0, 2, 3), keepdims=True)
    return (x_tr - mean) / std, (x_va - mean) / std, y_tr.astype(np.int64), y_va.astype(np.int64)


def _digits_task(build: Callable[[dict[str, Any]], nn.Module], **kw: Any) -> Task:
    x_tr, x_va, y_tr, y_va = digits_split()
    args: dict[str, Any] = dict(
        build_model=build, train=(x_tr, y_tr), val=(x_va, y_va), num_classes=10
    )
    args.update(kw)
    return Task(**args)


def _counting_sequences(n: int, seed: int, vocab: int = 64, length: int = 24) -> tuple[Any, ...]:
    """Token sequences whose label is the class marker (tokens 1..4) seen most often."""
    from sweeper.examples.text import make_sequences

    return make_sequences(n, seed)


# -- language models ----------------------------------------------------------------------------
class RNNModel(nn.Module):
    """pytorch/examples' word_language_model RNNModel, batch first: encoder, LSTM, decoder,
    uniform(-0.1, 0.1) init of the embedding and decoder, optionally tied weights."""

    def __init__(
        self, ntoken: int, ninp: int, nhid: int, nlayers: int, dropout: float, tie: bool = False
    ) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout, batch_first=True)
        self.decoder = nn.Linear(nhid, ntoken)
        if tie:
            self.decoder.weight = self.encoder.weight
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        if not tie:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.drop(self.encoder(ids)))
        return self.decoder(self.drop(out))


def lstm_language_model() -> Task:
    x_tr, y_tr, x_va, y_va, v = lm_windows()
    return Task(
        build_model=lambda p: RNNModel(v, 64, 64, 2, p["dropout"]),
        train=(x_tr, y_tr),
        val=(x_va, y_va),
        loss="cross_entropy",
        num_classes=v,
    )


def lstm_language_model_custom_loss() -> Task:
    """The same LM with the loss written the way main.py writes it (flatten, then CE)."""
    x_tr, y_tr, x_va, y_va, v = lm_windows()
    return Task(
        build_model=lambda p: RNNModel(v, 64, 64, 2, p["dropout"], tie=True),
        train=(x_tr, y_tr),
        val=(x_va, y_va),
        num_classes=v,
        loss=lambda out, y: F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1)),
    )


def _hf(name: str) -> Any:
    return getattr(importlib.import_module("transformers"), name)


def gpt2_decoder() -> Task:
    x_tr, y_tr, x_va, y_va, v = lm_windows(length=32)

    def build(p: dict[str, Any]) -> nn.Module:
        cfg = _hf("GPT2Config")(
            vocab_size=v,
            n_positions=32,
            n_embd=32,
            n_layer=2,
            n_head=2,
            resid_pdrop=p["dropout"],
            embd_pdrop=p["dropout"],
            attn_pdrop=p["dropout"],
            bos_token_id=0,
            eos_token_id=0,
            use_cache=False,
        )
        return _hf("GPT2LMHeadModel")(cfg)

    return Task(
        build_model=build,
        train=({"input_ids": x_tr}, y_tr),
        val=({"input_ids": x_va}, y_va),
        num_classes=v,
    )


def bert_classifier() -> Task:
    x_tr, y_tr = _counting_sequences(800, seed=0)
    x_va, y_va = _counting_sequences(300, seed=1)

    def build(p: dict[str, Any]) -> nn.Module:
        cfg = _hf("BertConfig")(
            vocab_size=64,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=32,
            num_labels=4,
            hidden_dropout_prob=p["dropout"],
            attention_probs_dropout_prob=p["dropout"],
        )
        return _hf("BertForSequenceClassification")(cfg)

    return Task(build_model=build, train=(x_tr, y_tr), val=(x_va, y_va), num_classes=4)


def distilbert_token_tagger() -> Task:
    """Per-token tags (is this token a class marker?), padding labelled -100 as HF does."""
    x_tr, _ = _counting_sequences(800, seed=0)
    x_va, _ = _counting_sequences(300, seed=1)

    def tags(x: dict[str, torch.Tensor]) -> torch.Tensor:
        y = ((x["input_ids"] >= 1) & (x["input_ids"] <= 4)).long() + (x["input_ids"] >= 32).long()
        return y.masked_fill(x["attention_mask"] == 0, -100)

    def build(p: dict[str, Any]) -> nn.Module:
        cfg = _hf("DistilBertConfig")(
            vocab_size=64,
            dim=32,
            n_layers=2,
            n_heads=2,
            hidden_dim=64,
            max_position_embeddings=32,
            num_labels=3,
            dropout=p["dropout"],
            attention_dropout=p["dropout"],
        )
        return _hf("DistilBertForTokenClassification")(cfg)

    return Task(build_model=build, train=(x_tr, tags(x_tr)), val=(x_va, tags(x_va)), num_classes=3)


def bert_masked_lm() -> Task:
    """Masked-token prediction on the text corpus: 15% of positions masked, the rest -100."""
    x_tr, _, x_va, _, v = lm_windows(length=32)
    mask_id = v

    def masked(x: torch.Tensor, seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        hide = torch.rand(x.shape, generator=g) < 0.15
        return {"input_ids": x.masked_fill(hide, mask_id)}, x.masked_fill(~hide, -100)

    def build(p: dict[str, Any]) -> nn.Module:
        cfg = _hf("BertConfig")(
            vocab_size=v + 1,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=32,
            hidden_dropout_prob=p["dropout"],
            attention_probs_dropout_prob=p["dropout"],
        )
        return _hf("BertForMaskedLM")(cfg)

    return Task(build_model=build, train=masked(x_tr, 0), val=masked(x_va, 1), num_classes=v + 1)


def t5_seq2seq() -> Task:
    """Reverse a sequence of tokens: encoder input, teacher-forced decoder input, labels."""

    def pairs(n: int, seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        src = torch.randint(2, 40, (n, 12), generator=g)
        tgt = src.flip(1)
        dec = torch.cat([torch.zeros(n, 1, dtype=torch.long), tgt[:, :-1]], dim=1)
        return {"input_ids": src, "decoder_input_ids": dec}, tgt

    def build(p: dict[str, Any]) -> nn.Module:
        cfg = _hf("T5Config")(
            vocab_size=40,
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            dropout_rate=p["dropout"],
            decoder_start_token_id=0,
            pad_token_id=0,
        )
        return _hf("T5ForConditionalGeneration")(cfg)

    return Task(build_model=build, train=pairs(1000, 0), val=pairs(300, 1), num_classes=40)


def bart_seq2seq() -> Task:
    """Copy with a shift: every token + 1 (a seq2seq the decoder learns through attention)."""

    def pairs(n: int, seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        src = torch.randint(3, 30, (n, 10), generator=g)
        tgt = src + 1
        dec = torch.cat([torch.full((n, 1), 2, dtype=torch.long), tgt[:, :-1]], dim=1)
        return {"input_ids": src, "decoder_input_ids": dec}, tgt

    def build(p: dict[str, Any]) -> nn.Module:
        cfg = _hf("BartConfig")(
            vocab_size=32,
            d_model=32,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            max_position_embeddings=32,
            dropout=p["dropout"],
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            decoder_start_token_id=2,
        )
        return _hf("BartForConditionalGeneration")(cfg)

    return Task(build_model=build, train=pairs(1000, 0), val=pairs(300, 1), num_classes=32)


def vit_image_classifier() -> Task:
    x_tr, x_va, y_tr, y_va = images(size=16, channels=3)

    def build(p: dict[str, Any]) -> nn.Module:
        cfg = _hf("ViTConfig")(
            image_size=16,
            patch_size=4,
            num_channels=3,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            num_labels=10,
            hidden_dropout_prob=p["dropout"],
        )
        return _hf("ViTForImageClassification")(cfg)

    return Task(
        build_model=build,
        train=({"pixel_values": x_tr}, y_tr),
        val=({"pixel_values": x_va}, y_va),
        num_classes=10,
    )


# -- vision -------------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    """kuangliu/pytorch-cifar's BasicBlock: two 3x3 conv + BN, a 1x1 conv shortcut on a
    stride or width change; `zero_init` zeroes the last BN's gamma (torchvision's
    zero_init_residual), so every block starts as the identity."""

    def __init__(self, cin: int, cout: int, stride: int = 1, zero_init: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )
        if zero_init:
            nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """kuangliu's ResNet layout (stem conv + BN, four stages, average pool, linear)."""

    def __init__(
        self,
        blocks: tuple[int, ...] = (1, 1, 1, 1),
        width: int = 8,
        zero_init: bool = False,
        classes: int = 10,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers, cin = [], width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            for j in range(n):
                layers.append(BasicBlock(cin, cout, 2 if (j == 0 and i > 0) else 1, zero_init))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def resnet_batchnorm() -> Task:
    x_tr, x_va, y_tr, y_va = images()
    return Task(
        build_model=lambda p: ResNet(),
        train=(x_tr, y_tr),
        val=(x_va, y_va),
        num_classes=10,
        optimizer=_sgd,
    )


def _sgd(model: nn.Module, p: dict[str, Any]) -> torch.optim.Optimizer:
    """main.py's optimizer: SGD, momentum 0.9, weight decay 5e-4."""
    return torch.optim.SGD(model.parameters(), lr=float(p["lr"]), momentum=0.9, weight_decay=5e-4)


def resnet_zero_init_residual() -> Task:
    x_tr, x_va, y_tr, y_va = images()
    return Task(
        build_model=lambda p: ResNet(zero_init=True),
        train=(x_tr, y_tr),
        val=(x_va, y_va),
        num_classes=10,
    )


class UNet(nn.Module):
    """A two-level U-Net: down, bottleneck, up with a skip connection; per-pixel logits."""

    def __init__(self, classes: int = 3, c: int = 8) -> None:
        super().__init__()

        def block(i: int, o: int) -> nn.Module:
            return nn.Sequential(
                nn.Conv2d(i, o, 3, padding=1),
                nn.BatchNorm2d(o),
                nn.ReLU(),
                nn.Conv2d(o, o, 3, padding=1),
                nn.BatchNorm2d(o),
                nn.ReLU(),
            )

        self.down, self.mid = block(1, c), block(c, 2 * c)
        self.up = nn.ConvTranspose2d(2 * c, c, 2, stride=2)
        self.dec = block(2 * c, c)
        self.head = nn.Conv2d(c, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.down(x)
        u = self.up(self.mid(F.max_pool2d(d, 2)))
        return self.head(self.dec(torch.cat([u, d], dim=1)))


def unet_segmenter() -> Task:
    """Per-pixel classes: background, stroke, stroke core (thresholds on the intensity)."""
    x_tr, x_va, _, _ = images(size=16, channels=1)
    raw_tr, raw_va = x_tr[:, 0], x_va[:, 0]

    def masks(r: np.ndarray) -> np.ndarray:
        return (r > 0.5).astype(np.int64) + (r > 1.5).astype(np.int64)

    return Task(
        build_model=lambda p: UNet(),
        train=(x_tr, masks(raw_tr)),
        val=(x_va, masks(raw_va)),
        num_classes=3,
    )


# -- fine-tuning --------------------------------------------------------------------------------
@functools.cache
def _pretrained_backbone() -> dict[str, torch.Tensor]:
    """A backbone pre-trained on digits 0-4, kept in memory for the session."""
    x_tr, _, y_tr, _ = digits_split()
    keep = y_tr < 5
    x, y = torch.as_tensor(x_tr[keep]), torch.as_tensor(y_tr[keep])
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
    model = nn.Sequential(backbone, nn.Linear(64, 5))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(10):
        for idx in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return {k: v.detach().clone() for k, v in backbone.state_dict().items()}


class FineTune(nn.Module):
    def __init__(self, frozen: bool, dropout: float) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        self.backbone.load_state_dict(_pretrained_backbone())
        self.backbone.requires_grad_(not frozen)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(64, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def _upper_digits(frozen: bool) -> Task:
    x_tr, x_va, y_tr, y_va = digits_split()
    tr, va = y_tr >= 5, y_va >= 5
    return Task(
        build_model=lambda p: FineTune(frozen, p["dropout"]),
        train=(x_tr[tr], y_tr[tr] - 5),
        val=(x_va[va], y_va[va] - 5),
        num_classes=5,
    )


def pretrained_finetune() -> Task:
    return _upper_digits(frozen=False)


def pretrained_frozen_backbone() -> Task:
    return _upper_digits(frozen=True)


# -- other task structures ----------------------------------------------------------------------
def _label_sets(y: np.ndarray) -> np.ndarray:
    """Independent labels per digit: even, above 4, prime, round (0, 6, 8, 9)."""
    return np.stack(
        [y % 2 == 0, y > 4, np.isin(y, [2, 3, 5, 7]), np.isin(y, [0, 6, 8, 9])], axis=1
    ).astype(np.float32)


def multilabel_bce() -> Task:
    x_tr, x_va, y_tr, y_va = digits_split()
    return Task(
        build_model=lambda p: nn.Sequential(
            nn.Linear(64, 64), nn.ReLU(), nn.Dropout(p["dropout"]), nn.Linear(64, 4)
        ),
        train=(x_tr, _label_sets(y_tr)),
        val=(x_va, _label_sets(y_va)),
        loss=nn.BCEWithLogitsLoss(),
        kind="multilabel",
    )


class MultiTask(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(64, 64), nn.ReLU())
        self.digit, self.parity = nn.Linear(64, 10), nn.Linear(64, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(x)
        return {"digit": self.digit(h), "parity": self.parity(h).squeeze(-1)}


def multitask_dict_outputs() -> Task:
    def loss(out: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out["digit"], y) + F.binary_cross_entropy_with_logits(
            out["parity"], (y % 2).float()
        )

    return _digits_task(lambda p: MultiTask(), loss=loss, kind="custom", num_classes=None)


class VAE(nn.Module):
    def __init__(self, latent: int = 8) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2 * latent))
        self.dec = nn.Sequential(nn.Linear(latent, 64), nn.ReLU(), nn.Linear(64, 64))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.enc(x).chunk(2, dim=-1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.dec(z), mu, logvar


def vae() -> Task:
    x_tr, x_va, _, _ = digits_split()

    def elbo(out: tuple[torch.Tensor, ...], x: torch.Tensor) -> torch.Tensor:
        recon, mu, logvar = out
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1).mean()
        return F.mse_loss(recon, x, reduction="none").sum(-1).mean() + kl

    return Task(
        build_model=lambda p: VAE(), train=(x_tr, x_tr), val=(x_va, x_va), loss=elbo, kind="custom"
    )


class Contrastive(nn.Module):
    """SimCLR-style: two noisy views of each row, one encoder, projections compared."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        noise = 0.3 if self.training else 0.0
        a = self.enc(x + noise * torch.randn_like(x))
        b = self.enc(x + noise * torch.randn_like(x))
        return F.normalize(a, dim=-1), F.normalize(b, dim=-1)


def contrastive_info_nce() -> Task:
    x_tr, x_va, _, _ = digits_split()

    def info_nce(out: tuple[torch.Tensor, torch.Tensor], _y: torch.Tensor) -> torch.Tensor:
        a, b = out
        logits = a @ b.T / 0.2
        return F.cross_entropy(logits, torch.arange(len(a), device=a.device))

    return Task(
        build_model=lambda p: Contrastive(),
        train=(x_tr, np.zeros(len(x_tr), "f4")),
        val=(x_va, np.zeros(len(x_va), "f4")),
        loss=info_nce,
        kind="custom",
    )


def multi_output_regression() -> Task:
    """Predict two standardized pixel statistics of each digit from the image."""
    x_tr, x_va, _, _ = digits_split()

    def targets(x: np.ndarray) -> np.ndarray:
        t = np.stack([x[:, :32].mean(1), x[:, 32:].mean(1)], axis=1)
        return ((t - t.mean(0)) / t.std(0)).astype(np.float32)

    return Task(
        build_model=lambda p: nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2)),
        train=(x_tr, targets(x_tr)),
        val=(x_va, targets(x_va)),
        loss="mse",
        kind="regression",
    )


def _rare_positive() -> tuple[np.ndarray, ...]:
    """Is the digit a 0? (10% positive)."""
    x_tr, x_va, y_tr, y_va = digits_split()
    return x_tr, x_va, (y_tr == 0).astype(np.float32), (y_va == 0).astype(np.float32)


def prior_bias_rare_positive() -> Task:
    x_tr, x_va, y_tr, y_va = _rare_positive()
    prior = float(y_tr.mean())

    def build(p: dict[str, Any]) -> nn.Module:
        model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))
        nn.init.constant_(model[2].bias, math.log(prior / (1 - prior)))
        return model

    return Task(build_model=build, train=(x_tr, y_tr), val=(x_va, y_va), loss="bce", kind="binary")


def sigmoid_with_bce_loss() -> Task:
    x_tr, x_va, y_tr, y_va = digits_split()
    y_tr, y_va = (y_tr % 2).astype(np.float32), (y_va % 2).astype(np.float32)
    return Task(
        build_model=lambda p: nn.Sequential(
            nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1), nn.Flatten(0), nn.Sigmoid()
        ),
        train=(x_tr, y_tr),
        val=(x_va, y_va),
        loss=nn.BCELoss(),
        kind="binary",
    )


def zero_init_head() -> Task:
    def build(p: dict[str, Any]) -> nn.Module:
        model = MLP(64, p["dropout"])
        nn.init.zeros_(model.net[-1].weight)
        nn.init.zeros_(model.net[-1].bias)
        return model

    return _digits_task(build)


class ReZeroMLP(nn.Module):
    """Residual branches whose last layer starts at zero (Fixup / SkipInit style)."""

    def __init__(self, width: int = 64, blocks: int = 4) -> None:
        super().__init__()
        self.inp = nn.Linear(64, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
            for _ in range(blocks)
        )
        for b in self.blocks:
            nn.init.zeros_(b[2].weight)
            nn.init.zeros_(b[2].bias)
        self.out = nn.Linear(width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for b in self.blocks:
            h = h + b(h)
        return self.out(F.relu(h))


def zero_init_residual_branches() -> Task:
    return _digits_task(lambda p: ReZeroMLP())


def gru_sequence_classifier() -> Task:
    x_tr, y_tr = _counting_sequences(800, seed=0)
    x_va, y_va = _counting_sequences(300, seed=1)

    class GRUClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(64, 32, padding_idx=0)
            self.gru = nn.GRU(32, 32, batch_first=True, bidirectional=True)
            self.head = nn.Linear(64, 4)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            h, _ = self.gru(self.emb(input_ids))
            keep = attention_mask.unsqueeze(-1).float()
            return self.head((h * keep).sum(1) / keep.sum(1))

    return Task(
        build_model=lambda p: GRUClassifier(), train=(x_tr, y_tr), val=(x_va, y_va), num_classes=4
    )


def label_smoothing_imbalanced() -> Task:
    """Label smoothing on a task where two classes hold most rows."""
    x_tr, x_va, y_tr, y_va = digits_split()
    keep_tr = (y_tr < 2) | (np.arange(len(y_tr)) % 4 == 0)
    keep_va = (y_va < 2) | (np.arange(len(y_va)) % 4 == 0)
    return _digits_task(
        lambda p: MLP(64, p["dropout"]),
        train=(x_tr[keep_tr], y_tr[keep_tr]),
        val=(x_va[keep_va], y_va[keep_va]),
        loss=nn.CrossEntropyLoss(label_smoothing=0.1),
    )


CORPUS: list[Callable[[], Task]] = [
    lstm_language_model,
    lstm_language_model_custom_loss,
    gpt2_decoder,
    bert_classifier,
    distilbert_token_tagger,
    bert_masked_lm,
    t5_seq2seq,
    bart_seq2seq,
    vit_image_classifier,
    resnet_batchnorm,
    resnet_zero_init_residual,
    unet_segmenter,
    pretrained_finetune,
    pretrained_frozen_backbone,
    multilabel_bce,
    multitask_dict_outputs,
    vae,
    contrastive_info_nce,
    multi_output_regression,
    prior_bias_rare_positive,
    sigmoid_with_bce_loss,
    zero_init_head,
    zero_init_residual_branches,
    gru_sequence_classifier,
    label_smoothing_imbalanced,
]
