"""Leaks through the model, not the data: an autoregressive model that sees the future and a
padded batch whose padding reaches the real positions. Each broken model is named by
`causal_mask` / `padding_mask` with the layer where the leak enters, and its fixed twin (the
same model with the mask applied) passes: a hand-written decoder, Hugging Face's BERT as a
language model (`is_decoder` off, the classic mistake) beside GPT-2, a BERT classifier that
drops its attention_mask, and an nn.TransformerEncoder without its key padding mask."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sweeper
from sweeper import Task
from sweeper.probes import Settings, run_gate

V, T = 48, 16
# the probes that train: not needed to judge a mask, and the slowest part of a gate
TRAINING = ("overfit_tiny", "zero_input_baseline", "short_fit_vs_baseline", "label_noise")
FAST = Settings(disabled=(*TRAINING, "lr_range_test"))


def _tokens(n: int, seed: int, length: int = T + 1) -> torch.Tensor:
    return torch.randint(1, V, (n, length), generator=torch.Generator().manual_seed(seed))


def _lm(build: Callable[[dict[str, Any]], nn.Module], as_dict: bool = False) -> Task:
    def split(s: torch.Tensor) -> tuple[Any, torch.Tensor]:
        x = s[:, :-1]
        return ({"input_ids": x} if as_dict else x), s[:, 1:]

    return Task(
        build_model=build, train=split(_tokens(256, 0)), val=split(_tokens(64, 1)), num_classes=V
    )


def _classifier(build: Callable[[dict[str, Any]], nn.Module]) -> Task:
    def split(n: int, seed: int) -> tuple[Any, torch.Tensor]:
        ids = _tokens(n, seed, T)
        mask = torch.ones_like(ids)
        return {"input_ids": ids, "attention_mask": mask}, ids[:, 0] % 2

    return Task(build_model=build, train=split(256, 0), val=split(64, 1), num_classes=2)


class Attention(nn.Module):
    def __init__(self, d: int, causal: bool) -> None:
        super().__init__()
        self.qkv, self.proj, self.causal = nn.Linear(d, 3 * d), nn.Linear(d, d), causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, 2, c // 2).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class Decoder(nn.Module):
    """nanoGPT's shape in miniature: token + position embeddings, pre-norm blocks."""

    def __init__(self, causal: bool, d: int = 32) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(V, d), nn.Embedding(T, d)
        self.ln1, self.attn = nn.ModuleList(), nn.ModuleList()
        for _ in range(2):
            self.ln1.append(nn.LayerNorm(d))
            self.attn.append(Attention(d, causal))
        self.mlp = nn.Sequential(
            nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d)
        )
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, V))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for ln, attn in zip(self.ln1, self.attn, strict=True):
            x = x + attn(ln(x))
        return self.head(x + self.mlp(x))


class Encoder(nn.Module):
    """nn.TransformerEncoder over a padded batch, mean-pooled over the real tokens."""

    def __init__(self, use_mask: bool, d: int = 32) -> None:
        super().__init__()
        self.emb, self.use_mask = nn.Embedding(V, d), use_mask
        layer = nn.TransformerEncoderLayer(d, 2, 64, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pad = attention_mask == 0 if self.use_mask else None
        h = self.enc(self.emb(input_ids), src_key_padding_mask=pad)
        keep = attention_mask.unsqueeze(-1).float()
        return self.head((h * keep).sum(1) / keep.sum(1))


def _bert_config(**kw: Any) -> Any:
    import transformers

    return transformers.BertConfig(
        vocab_size=V,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=T,
        **kw,
    )


def bert_lm(decoder: bool) -> nn.Module:
    """BertLMHeadModel is causal only with is_decoder=True; without it, it reads the future."""
    import transformers

    return transformers.BertLMHeadModel(_bert_config(is_decoder=decoder))


def gpt2_lm() -> nn.Module:
    import transformers

    cfg = transformers.GPT2Config(vocab_size=V, n_positions=T, n_embd=32, n_layer=2, n_head=2)
    return transformers.GPT2LMHeadModel(cfg)


class BertDropsMask(nn.Module):
    def __init__(self, pass_mask: bool) -> None:
        import transformers

        super().__init__()
        self.pass_mask = pass_mask
        self.bert = transformers.BertForSequenceClassification(_bert_config(num_labels=2))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask if self.pass_mask else None  # the bug: the mask is not passed
        return self.bert(input_ids=input_ids, attention_mask=mask).logits


# (broken, fixed, the probe that names it, a word of the layer it names)
CASES: dict[str, tuple[Callable[[], Task], Callable[[], Task], str, str]] = {
    "hand_written_decoder": (
        lambda: _lm(lambda p: Decoder(causal=False)),
        lambda: _lm(lambda p: Decoder(causal=True)),
        "causal_mask",
        "attn.0",
    ),
    "bert_lm_without_is_decoder": (
        lambda: _lm(lambda p: bert_lm(False), as_dict=True),
        lambda: _lm(lambda p: bert_lm(True), as_dict=True),
        "causal_mask",
        "attention",
    ),
    "bert_classifier_drops_attention_mask": (
        lambda: _classifier(lambda p: BertDropsMask(False)),
        lambda: _classifier(lambda p: BertDropsMask(True)),
        "padding_mask",
        "attention",
    ),
    "transformer_encoder_without_padding_mask": (
        lambda: _classifier(lambda p: Encoder(False)),
        lambda: _classifier(lambda p: Encoder(True)),
        "padding_mask",
        "enc.layers.0",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sequence_leak_is_named_with_its_layer_and_its_fixed_twin_passes(case: str) -> None:
    pytest.importorskip("transformers")
    broken, fixed, probe, layer = CASES[case]
    report = run_gate(broken(), settings=FAST)
    finding = report[probe]
    assert finding.verdict == "fail", report.table()
    assert layer in finding.details["layer"], finding.details
    assert report.root_cause is not None and report.root_cause.probe == probe
    twin = run_gate(fixed(), settings=FAST)
    assert twin[probe].verdict == "pass", twin[probe]
    assert not twin.failures, [f.probe for f in twin.failures]


def test_gpt2_from_transformers_passes_causal_mask_and_a_decoder_passes_the_whole_gate() -> None:
    pytest.importorskip("transformers")
    assert (
        run_gate(_lm(lambda p: gpt2_lm(), as_dict=True), settings=FAST)["causal_mask"].verdict
        == "pass"
    )
    report = sweeper.probe(_lm(lambda p: Decoder(causal=True)))
    assert report["causal_mask"].verdict == "pass" and not report.failures, report.table()
    leaky = sweeper.probe(_lm(lambda p: Decoder(causal=False)))
    assert leaky.root_cause is not None and leaky.root_cause.probe == "causal_mask"


def test_sequence_leak_probes_skip_what_they_cannot_judge() -> None:
    from sweeper.examples.digits import mlp_task

    report = run_gate(mlp_task(), settings=FAST)
    assert report["causal_mask"].verdict == "skip" and report["padding_mask"].verdict == "skip"
    # token inputs whose targets are not the inputs shifted: not autoregressive
    seqs = _tokens(128, 0, T)
    task = Task(
        build_model=lambda p: nn.Sequential(
            nn.Embedding(V, 16), nn.Flatten(), nn.Linear(16 * T, 2)
        ),
        train=(seqs, seqs[:, 0] % 2),
        val=(seqs[:32], seqs[:32, 0] % 2),
        num_classes=2,
    )
    assert run_gate(task, settings=FAST)["causal_mask"].verdict == "skip"
