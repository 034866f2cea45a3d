"""LightningModule for fine-tuning BERT on a classification task (Devlin et al., 2019, sec. 4; d2l 16.7).

Shape legend: B batch, T length, C classes.

Three ways to train the same :class:`attnlab.models.bert_classifier.BertClassifier`, the ablation that shows
what pretraining buys: ``pretrained=<file>`` (fine-tuning: every weight learns, the encoder at a smaller rate
than the new output layer), ``pretrained=<file> model.freeze_encoder=true`` (feature-based: only the output
layer learns) and ``pretrained=null`` (the same architecture from scratch). The file is read and the encoder
filled by the entry point (:mod:`attnlab.lit.pretrained`), never here.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from attnlab.data.classification_inputs import ClassificationBatch
from attnlab.training.optim import weight_decay_groups
from attnlab.lit.predictions import PREDICTIONS_DIR, write_predictions
from attnlab.lit.self_attention import PlotsSelfAttention
from attnlab.lit.task import StepOutput, TaskModule
from attnlab.models.bert_classifier import ClassifierOutput

log = logging.getLogger(__name__)


class ClassificationModule(PlotsSelfAttention, TaskModule):
    """Cross-entropy on the classifier's logits; accuracy and macro-F1 (each class counts equally) per stage. The
    test writes each example's label and prediction to ``predictions/test.tsv`` (:mod:`attnlab.lit.predictions`).

    Args:
        net, optimizer, scheduler, weight_decay, compile: as :class:`~attnlab.lit.task.TaskModule`.
        pretrained: the file the entry point filled the encoder from, or None (from scratch); recorded here,
            never opened. A pretrained encoder learns at ``lr * encoder_lr_scale`` (it should move less than the
            new layer); one trained from scratch is new too and learns at the full rate.
        freeze_encoder: feature-based transfer: only the output layer learns.
        plot_attention: plot the encoder's self-attention of a fixed validation input after each validation.
    """

    progress_bar = ("loss", "acc")

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable,
        scheduler: Callable | None = None,
        pretrained: str | None = None,
        freeze_encoder: bool = False,
        encoder_lr_scale: float = 1.0,
        weight_decay: float = 0.01,
        compile: bool = False,
        plot_attention: bool = True,
    ):
        if not 0 < encoder_lr_scale <= 1:
            raise ValueError(f"need 0 < encoder_lr_scale <= 1, got {encoder_lr_scale}")
        super().__init__(net, optimizer, scheduler, weight_decay=weight_decay, compile=compile)
        self.plot_attention = plot_attention
        if freeze_encoder:
            self.net.freeze_encoder()
        self._test_rows: list[Tensor] = []  # (B, 2) label, prediction per test batch, in test order

    def stage_metrics(self) -> dict[str, Metric]:
        return {"acc": MulticlassAccuracy(self.net.num_classes, average="micro"),
                "f1": MulticlassF1Score(self.net.num_classes, average="macro")}

    def parameter_groups(self) -> list[dict]:
        """Four named groups, encoder/head x decay/no_decay (frozen weights are in none of them)."""
        encoder_scale = self.hparams.encoder_lr_scale if self.hparams.pretrained is not None else 1.0
        groups = []
        for name, module, lr_scale in (("encoder", self.net.bert, encoder_scale), ("head", self.net.head, 1.0)):
            decay, no_decay = weight_decay_groups(module, self.hparams.weight_decay)
            groups += [{**decay, "name": f"{name}/decay", "lr_scale": lr_scale},
                       {**no_decay, "name": f"{name}/no_decay", "lr_scale": lr_scale}]
        return groups

    def forward(self, batch: ClassificationBatch) -> ClassifierOutput:
        return self.net(batch.tokens, batch.segments, batch.valid_lens)

    def step(self, batch: ClassificationBatch, stage: str) -> StepOutput:
        logits = self(batch).logits  # (B, C)
        loss = F.cross_entropy(logits.float(), batch.labels)
        for metric in self.metrics_of(stage).values():
            metric.update(logits.argmax(-1), batch.labels)
        if stage == "test":
            self._test_rows.append(torch.stack([batch.labels, logits.argmax(-1)], 1).cpu())
        self.log_metrics(stage, len(batch.labels), loss=loss.detach())
        return StepOutput(loss, int(batch.valid_lens.sum()))

    def start_evaluation(self, stage: str) -> None:
        super().start_evaluation(stage)
        if stage == "test":
            self._test_rows = []

    def finish_evaluation(self, stage: str) -> None:
        super().finish_evaluation(stage)
        if stage != "test":
            return
        if self.trainer.world_size > 1:  # each rank holds a sampler-interleaved share: no file in test order
            log.warning("predictions/test.tsv is written by single-process runs only (world size %d)",
                        self.trainer.world_size)
            return
        rows = torch.cat(self._test_rows).tolist() if self._test_rows else []
        write_predictions(Path(self.trainer.default_root_dir) / PREDICTIONS_DIR / "test.tsv",
                          [row[0] for row in rows], [row[1] for row in rows])

    @torch.no_grad()
    def predict_proba(self, batch: ClassificationBatch) -> Tensor:
        """Class probabilities (B, C); call ``eval()`` first for deterministic predictions."""
        return self(batch).logits.float().softmax(-1)
