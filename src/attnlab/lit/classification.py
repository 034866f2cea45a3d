"""LightningModule for fine-tuning BERT on a classification task (Devlin et al., 2019, sec. 4; d2l 16.7).

Shape legend: B batch, T length, C classes.

Three ways to train the same :class:`attnlab.models.bert_classifier.BertClassifier`, the ablation that shows
what pretraining buys: ``pretrained=<file>`` (fine-tuning: every weight learns, the encoder at a smaller rate
than the new output layer), ``pretrained=<file> freeze_encoder=true`` (feature-based: only the output layer
learns) and ``pretrained=null`` (the same architecture from scratch).
"""
from __future__ import annotations

import logging
from typing import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from attnlab.data.classification import ClassificationBatch
from attnlab.lit.compilation import CompileNetMixin
from attnlab.lit.optim import scheduler_for_run, weight_decay_groups
from attnlab.models.bert_classifier import ClassifierOutput, load_encoder_state, read_pretrained_encoder

log = logging.getLogger(__name__)

STAGES = ("train", "val", "test")
ENCODER_GROUP = "encoder"  # param-group name prefix of the encoder's weights (learning rate scaled)


class ClassificationMetrics(nn.Module):
    """Accuracy and macro-F1 (each class counts equally, whatever its frequency) of one stage."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.acc = MulticlassAccuracy(num_classes, average="micro")
        self.f1 = MulticlassF1Score(num_classes, average="macro")


class ClassificationModule(CompileNetMixin, pl.LightningModule):
    """Cross-entropy on the classifier's logits; AdamW groups without decay on biases and norm gains.

    ``pretrained``: an attnlab BERT checkpoint or a Hugging Face state dict whose encoder weights are loaded
    when fitting starts (``setup("fit")``, before a resumed checkpoint would overwrite them), so rebuilding a
    fine-tuned model from its checkpoint never needs that file. ``encoder_lr_scale`` multiplies the learning
    rate of pretrained encoder weights, which should move less than the new layer; an encoder trained from
    scratch is new too and learns at the full rate. ``compile=True`` compiles the net with ``torch.compile``
    (in place, so checkpoints load either way).
    """

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
    ):
        super().__init__()
        if weight_decay < 0 or not 0 < encoder_lr_scale <= 1:
            raise ValueError(
                f"need weight_decay >= 0 and 0 < encoder_lr_scale <= 1, got {weight_decay}, {encoder_lr_scale}"
            )
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        if freeze_encoder:
            self.net.freeze_encoder()
        self.metrics = nn.ModuleDict({f"{stage}_metrics": ClassificationMetrics(net.num_classes) for stage in STAGES})
        self._pretrained_loaded = False

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.hparams.pretrained is not None and not self._pretrained_loaded:
            self.load_pretrained(self.hparams.pretrained)

    def load_pretrained(self, path: str) -> None:
        """Load the encoder from ``path`` after checking it was pretrained with the data's tokenizer."""
        pretrained = read_pretrained_encoder(path, self.net.bert.num_heads)
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        tokenizer = getattr(datamodule, "tokenizer", None)
        if pretrained.tokenizer_json is not None and tokenizer is not None and tokenizer.to_str() != pretrained.tokenizer_json:
            raise ValueError(
                f"tokenizer mismatch: the data is tokenized with a different tokenizer than {path} was pretrained "
                f"with (data.tokenizer_from={getattr(datamodule, 'tokenizer_from', None)}); "
                f"set data.tokenizer_from to the pretrained checkpoint"
            )
        load_encoder_state(self.net.bert, pretrained.state, str(path))
        self._pretrained_loaded = True
        log.info("encoder loaded from %s%s", path, " (frozen)" if self.hparams.freeze_encoder else "")

    def forward(self, batch: ClassificationBatch) -> ClassifierOutput:
        return self.net(batch.tokens, batch.segments, batch.valid_lens)

    def _step(self, batch: ClassificationBatch, stage: str) -> Tensor:
        logits = self(batch).logits  # (B, C)
        loss = F.cross_entropy(logits.float(), batch.labels)
        metrics: ClassificationMetrics = self.metrics[f"{stage}_metrics"]
        metrics.acc.update(logits.argmax(-1), batch.labels)
        metrics.f1.update(logits.argmax(-1), batch.labels)
        batch_size = len(batch.labels)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss.detach(), prog_bar=True, on_step=on_step, on_epoch=True, batch_size=batch_size)
        self.log(f"{stage}/acc", metrics.acc, prog_bar=stage != "train", on_step=False, on_epoch=True, batch_size=batch_size)
        self.log(f"{stage}/f1", metrics.f1, on_step=False, on_epoch=True, batch_size=batch_size)
        return loss

    def training_step(self, batch: ClassificationBatch, batch_idx: int) -> dict:
        loss = self._step(batch, "train")
        return {"loss": loss, "num_tokens": int(batch.valid_lens.sum())}  # non-padding tokens, for Throughput

    def validation_step(self, batch: ClassificationBatch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: ClassificationBatch, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self):
        """Four named groups (encoder/head x decay/no decay); frozen weights are in none of them."""
        groups = []
        for name, module in ((ENCODER_GROUP, self.net.bert), ("head", self.net.head)):
            decay, no_decay = weight_decay_groups(module, self.hparams.weight_decay)
            groups += [{**decay, "name": f"{name}/decay"}, {**no_decay, "name": f"{name}/no_decay"}]
        optimizer = self.optimizer_factory(params=[group for group in groups if group["params"]])
        scale = self.hparams.encoder_lr_scale if self.hparams.pretrained is not None else 1.0
        for group in optimizer.param_groups:
            if group["name"].startswith(ENCODER_GROUP):
                group["lr"] = group["lr"] * scale
        if self.scheduler_factory is None:
            return optimizer
        scheduler = scheduler_for_run(self.scheduler_factory, optimizer, self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    @torch.no_grad()
    def predict_proba(self, batch: ClassificationBatch) -> Tensor:
        """Class probabilities (B, C); call ``eval()`` first for deterministic predictions."""
        return self(batch).logits.float().softmax(-1)
