"""A tiny BERT trained by Hugging Face's ``Trainer`` as each trial: counting markers in token
sequences (the data of `sweeper.examples.text`).

The model is ``BertForSequenceClassification`` built from a small ``BertConfig``: nothing is
downloaded. The task gives the model as ``build_model`` (its output's ``logits`` are what
the gate probes) and a ``fit`` that runs the ``Trainer`` with
``sweeper.integrations.transformers.SweeperCallback``: the callback watches the model and
the optimizer the Trainer built, reports ``eval_loss``/``eval_accuracy``/``train_loss`` after
each epoch's evaluation, and ends training when the pruner or a probe stops the trial.
Needs ``pip install 'sweeper[transformers]'``.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from typing import Any

import numpy as np
import torch

from sweeper.examples.text import CLASSES, MAX_LEN, VOCAB, make_sequences
from sweeper.task import Task
from sweeper.training import Trial


def tiny_bert(params: dict[str, Any]) -> Any:
    """A two-layer BERT classifier of width `hidden` (default 32), built from a config."""
    from transformers import BertConfig, BertForSequenceClassification

    hidden = int(params.get("hidden", 32))
    dropout = float(params.get("dropout", 0.1))
    # num_labels is a PretrainedConfig keyword BertConfig passes on
    config = BertConfig(  # type: ignore[call-arg]
        vocab_size=VOCAB,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=MAX_LEN,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        num_labels=CLASSES,
    )
    return BertForSequenceClassification(config)


class Rows(torch.utils.data.Dataset):
    """The sequences as the dict rows a Hugging Face Trainer feeds: input ids, mask, label."""

    def __init__(self, x: dict[str, torch.Tensor], y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {**{k: v[i] for k, v in self.x.items()}, "labels": self.y[i]}


def accuracy(prediction: Any) -> dict[str, float]:
    """compute_metrics for the Trainer: the share of sequences classified right."""
    logits, labels = prediction
    return {"accuracy": float((np.argmax(logits, axis=-1) == labels).mean())}


def hf_text_task(train_rows: int = 1200, val_rows: int = 400) -> Task:
    """The marker-counting sequences classified by a tiny BERT, each trial a ``Trainer``."""
    x_tr, y_tr = make_sequences(train_rows, seed=0)
    x_va, y_va = make_sequences(val_rows, seed=1)

    def fit(params: dict[str, Any], trial: Trial) -> None:
        from transformers import PrinterCallback, Trainer, TrainingArguments
        from transformers.utils import logging as hf_logging

        from sweeper.integrations.transformers import SweeperCallback

        hf_logging.set_verbosity_error()
        logging.getLogger("accelerate").setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", module="transformers")
        with tempfile.TemporaryDirectory(prefix="sweeper-hf-") as out:
            args = TrainingArguments(
                output_dir=out,
                num_train_epochs=trial.epochs,
                per_device_train_batch_size=int(params["batch_size"]),
                per_device_eval_batch_size=256,
                learning_rate=float(params["lr"]),
                weight_decay=float(params.get("weight_decay", 0.0)),
                eval_strategy="epoch",
                logging_strategy="epoch",
                save_strategy="no",
                report_to=[],
                disable_tqdm=True,
                seed=trial.number,
                use_cpu=trial.device.type == "cpu",
            )
            trainer = Trainer(
                model=tiny_bert(params),
                args=args,
                train_dataset=Rows(x_tr, y_tr),
                eval_dataset=Rows(x_va, y_va),
                compute_metrics=accuracy,
                callbacks=[SweeperCallback(trial)],
            )
            trainer.remove_callback(PrinterCallback)  # sweeper prints each trial's result
            trainer.train()

    return Task(
        build_model=tiny_bert,
        train=(x_tr, y_tr),
        val=(x_va, y_va),
        loss="model",  # the gate trains on the model's own loss (called with labels=)
        kind="multiclass",
        num_classes=CLASSES,
        fit=fit,
    )
