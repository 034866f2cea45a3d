"""LightningModule for BERT pretraining: masked LM + next-sentence prediction (Devlin et al., 2019, sec. 3.1).

Shape legend: B batch, T length, P masked-LM prediction slots per sequence, N real slots of a batch, V vocabulary.

The MLM loss is the mean cross-entropy over the *real* prediction slots only (``mlm_mask``): the net predicts
there alone, so padding slots and unchosen positions never reach it. d2l multiplies by a weight mask but then
averages a loss that was already mean-reduced, so its padding slots still count; here they cannot.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric, Metric
from torchmetrics.classification import BinaryAccuracy

from attnlab.data.pretraining_examples import PretrainingBatch
from attnlab.lit.self_attention import PlotsSelfAttention
from attnlab.lit.task import StepOutput, TaskModule
from attnlab.models.bert import PretrainingOutput


class Perplexity(MeanMetric):
    """``exp`` of the token-weighted mean cross-entropy (update with the batch loss, weight = real slots)."""

    def compute(self) -> Tensor:
        return super().compute().exp()


class PretrainingLosses(NamedTuple):
    mlm: Tensor  # mean cross-entropy over the real prediction slots
    nsp: Tensor  # mean cross-entropy of the is-next classifier
    total: Tensor  # mlm + nsp_weight * nsp, what is minimised (Devlin et al., 2019, appendix A.2: weight 1)


def pretraining_losses(
    output: PretrainingOutput, batch: PretrainingBatch, nsp_weight: float = 1.0
) -> PretrainingLosses:
    """MLM loss over the real slots (``mlm_logits`` (N, V) of the net given ``mlm_mask``), NSP loss."""
    mlm = F.cross_entropy(output.mlm_logits.float(), batch.mlm_labels[batch.mlm_mask])
    nsp = F.cross_entropy(output.nsp_logits.float(), batch.nsp_labels)
    return PretrainingLosses(mlm, nsp, mlm + nsp_weight * nsp)


def mean_pairwise_cosine(vectors: Tensor) -> Tensor:
    """Mean cosine similarity over the pairs of different rows of ``vectors`` (N, D), N >= 2: near 1 when the
    encoder maps every text to the same summary (collapse), near 0 for unrelated directions."""
    unit = F.normalize(vectors.float(), dim=-1)
    count = unit.shape[0]
    total = unit.sum(0)  # (D,): sum_ij u_i . u_j = |sum_i u_i|^2, the diagonal adds N
    return (total.dot(total) - count) / (count * (count - 1))


class PretrainingModule(PlotsSelfAttention, TaskModule):
    """Trains a :class:`attnlab.models.bert.BertForPretraining` on pretraining batches; loss = MLM + ``nsp_weight``
    x NSP (the sentence-pair task: next-sentence or sentence-order prediction, as the data draws its negatives).

    Arguments as :class:`~attnlab.lit.task.TaskModule`: AdamW-style groups (no decay on biases and norm gains)
    by default. Metrics per stage: MLM loss, perplexity and accuracy (weighted per real slot), NSP loss and accuracy,
    and ``pooled_cos``: the mean cosine between the pooled ``[CLS]`` vectors of a batch's different pairs.
    ``plot_attention``: plot the self-attention of a fixed validation pair after each validation.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable,
        scheduler: Callable | None = None,
        weight_decay: float = 0.01,
        compile: bool = False,
        nsp_weight: float = 1.0,
        plot_attention: bool = True,
    ):
        if nsp_weight < 0:
            raise ValueError(f"nsp_weight must be >= 0, got {nsp_weight}")
        super().__init__(net, optimizer, scheduler, weight_decay=weight_decay, compile=compile)
        self.plot_attention = plot_attention

    def stage_metrics(self) -> dict[str, Metric]:
        return {"mlm_loss": MeanMetric(), "mlm_ppl": Perplexity(), "mlm_acc": MeanMetric(), "nsp_loss": MeanMetric(),
                "nsp_acc": BinaryAccuracy(), "pooled_cos": MeanMetric()}

    def forward(self, batch: PretrainingBatch) -> PretrainingOutput:
        return self.net(batch.tokens, batch.segments, batch.valid_lens, batch.mlm_positions, batch.mlm_mask)

    def step(self, batch: PretrainingBatch, stage: str) -> StepOutput:
        output = self(batch)
        mlm_loss, nsp_loss, loss = pretraining_losses(output, batch, self.hparams.nsp_weight)
        metrics = self.metrics_of(stage)
        labels = batch.mlm_labels[batch.mlm_mask]  # (N,)
        metrics["mlm_loss"].update(mlm_loss.detach(), len(labels))
        metrics["mlm_ppl"].update(mlm_loss.detach(), len(labels))
        metrics["mlm_acc"].update((output.mlm_logits.argmax(-1) == labels).float())  # (N,)
        metrics["nsp_loss"].update(nsp_loss.detach())
        metrics["nsp_acc"].update(output.nsp_logits.argmax(-1), batch.nsp_labels)
        rows = batch.tokens.shape[0]
        if rows > 1:
            with torch.no_grad():
                metrics["pooled_cos"].update(mean_pairwise_cosine(output.pooled), rows * (rows - 1))
        self.log_metrics(stage, batch.tokens.shape[0], loss=loss.detach())
        return StepOutput(loss, int(batch.valid_lens.sum()))
