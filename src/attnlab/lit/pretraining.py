"""LightningModule for BERT pretraining: masked LM + next-sentence prediction (Devlin et al., 2019, sec. 3.1).

Shape legend: B batch, T length, P masked-LM prediction slots per sequence, V vocabulary.

The MLM loss is the mean cross-entropy over the *real* prediction slots only (``mlm_mask``): padding slots
and unchosen positions never reach it. d2l multiplies by a weight mask but then averages a loss that was
already mean-reduced, so its padding slots still count; here they cannot.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import pytorch_lightning as pl
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.classification import BinaryAccuracy

from attnlab.data.pretraining_examples import PretrainingBatch
from attnlab.lit.compilation import CompileNetMixin
from attnlab.lit.optim import scheduler_for_run, weight_decay_groups
from attnlab.models.bert import PretrainingOutput

IGNORE = -100  # label of a padding prediction slot for cross_entropy
STAGES = ("train", "val", "test")


class Perplexity(MeanMetric):
    """``exp`` of the token-weighted mean cross-entropy (update with the batch loss, weight = real slots)."""

    def compute(self) -> Tensor:
        return super().compute().exp()


class PretrainingLosses(NamedTuple):
    mlm: Tensor  # mean cross-entropy over the real prediction slots
    nsp: Tensor  # mean cross-entropy of the is-next classifier
    total: Tensor  # mlm + nsp, what is minimised (Devlin et al., 2019, appendix A.2)


def pretraining_losses(output: PretrainingOutput, batch: PretrainingBatch) -> PretrainingLosses:
    """MLM loss over the slots with ``mlm_mask`` True only (logits at padding slots never enter it), NSP loss."""
    labels = batch.mlm_labels.masked_fill(~batch.mlm_mask, IGNORE)  # (B, P)
    mlm = F.cross_entropy(output.mlm_logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE)
    nsp = F.cross_entropy(output.nsp_logits.float(), batch.nsp_labels)
    return PretrainingLosses(mlm, nsp, mlm + nsp)


class PretrainingMetrics(nn.Module):
    """The five pretraining metrics of one stage; losses and MLM accuracy are weighted per real slot."""

    def __init__(self):
        super().__init__()
        self.mlm_loss = MeanMetric()
        self.mlm_ppl = Perplexity()
        self.mlm_acc = MeanMetric()
        self.nsp_loss = MeanMetric()
        self.nsp_acc = BinaryAccuracy()


class PretrainingModule(CompileNetMixin, pl.LightningModule):
    """Trains a :class:`attnlab.models.bert.BertForPretraining` on pretraining batches; loss = MLM + NSP.

    ``compile=True`` compiles the net with ``torch.compile`` (in place, so checkpoints load either way).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable,
        scheduler: Callable | None = None,
        weight_decay: float = 0.01,
        compile: bool = False,
    ):
        super().__init__()
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.metrics = nn.ModuleDict({f"{stage}_metrics": PretrainingMetrics() for stage in STAGES})

    def forward(self, batch: PretrainingBatch) -> PretrainingOutput:
        return self.net(batch.tokens, batch.segments, batch.valid_lens, batch.mlm_positions, batch.mlm_mask)

    def _step(self, batch: PretrainingBatch, stage: str) -> Tensor:
        output = self(batch)
        mlm_loss, nsp_loss, loss = pretraining_losses(output, batch)

        metrics: PretrainingMetrics = self.metrics[f"{stage}_metrics"]
        slots = batch.mlm_mask.sum()
        hits = (output.mlm_logits.argmax(-1) == batch.mlm_labels).float()  # (B, P)
        metrics.mlm_loss.update(mlm_loss.detach(), slots)
        metrics.mlm_ppl.update(mlm_loss.detach(), slots)
        metrics.mlm_acc.update(hits, batch.mlm_mask.float())
        metrics.nsp_loss.update(nsp_loss.detach())
        metrics.nsp_acc.update(output.nsp_logits.argmax(-1), batch.nsp_labels)
        on_step = stage == "train"
        batch_size = batch.tokens.shape[0]
        self.log(f"{stage}/loss", loss.detach(), prog_bar=True, on_step=on_step, on_epoch=True, batch_size=batch_size)
        for name in ("mlm_loss", "mlm_ppl", "mlm_acc", "nsp_loss", "nsp_acc"):
            self.log(f"{stage}/{name}", getattr(metrics, name), on_step=False, on_epoch=True, batch_size=batch_size)
        return loss

    def training_step(self, batch: PretrainingBatch, batch_idx: int) -> dict:
        loss = self._step(batch, "train")
        return {"loss": loss, "num_tokens": int(batch.valid_lens.sum())}  # non-padding tokens, for Throughput

    def validation_step(self, batch: PretrainingBatch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: PretrainingBatch, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self):
        """AdamW-style groups: decay matrices, not biases or norm gains; per-step warm-up/decay schedule."""
        optimizer = self.optimizer_factory(params=weight_decay_groups(self.net, self.hparams.weight_decay))
        if self.scheduler_factory is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler_for_run(self.scheduler_factory, optimizer, self.trainer.estimated_stepping_batches),
                "interval": "step",
            },
        }

