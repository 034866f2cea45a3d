"""BERT for classification (Devlin et al., 2019, sec. 4.1 and fig. 4; d2l 16.6): a pretrained encoder plus one new
output layer on a pooled vector: BERT's pooled ``[CLS]`` (the default) or the mean of the tokens' final vectors.

Shape legend: B batch, T sequence length, D model dim, C classes.

The point of the paper's fine-tuning recipe is that the only new parameters are that output layer; every
encoder weight starts from pretraining and is either fine-tuned with it or, for feature-based transfer
(ELMo-style), frozen (:meth:`BertClassifier.freeze_encoder`). Pretrained weights are read and loaded into
``bert`` by :mod:`attnlab.lit.pretrained`; pretraining heads (masked LM, next sentence) are dropped.
"""
from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from attnlab.models.bert import BertModel, BertOutput, init_bert_weights


class ClassifierOutput(NamedTuple):
    logits: Tensor  # (B, C)
    pooled: Tensor  # (B, D) the pooled vector the output layer reads


class ClsPooling(nn.Module):
    """BERT's sequence summary: the encoder's pooler on ``[CLS]``, ``tanh(W h_[CLS] + b)``, trained by NSP (sec. 4.1)."""

    def forward(self, encoded: BertOutput) -> Tensor:
        return encoded.pooled  # (B, D)


class MeanPooling(nn.Module):
    """The mean of the real tokens' final hidden vectors (special tokens included, padding not): a summary every
    token trains, e.g. through masked LM, where the ``[CLS]`` vector only NSP trains (Reimers & Gurevych, 2019)."""

    def forward(self, encoded: BertOutput) -> Tensor:
        mask = encoded.padding_mask.unsqueeze(-1).to(encoded.hidden.dtype)  # (B, T, 1)
        return (encoded.hidden * mask).sum(1) / mask.sum(1)  # (B, D)


class ClassificationHead(nn.Module):
    """The new output layer: dropout, then one linear map from the pooled vector to class scores."""

    def __init__(self, d_model: int, num_classes: int, *, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(d_model, num_classes)
        init_bert_weights(self.output)

    def forward(self, pooled: Tensor) -> Tensor:
        return self.output(self.dropout(pooled))  # (B, C)


class BertClassifier(nn.Module):
    """A built :class:`BertModel` + :class:`ClassificationHead` with ``num_classes`` outputs and ``dropout``, on the
    vector ``pooling`` reads from the encoder's output (:class:`ClsPooling`, the default, or :class:`MeanPooling`;
    neither has weights, so the choice changes no state-dict name).

    The encoder sits under ``bert`` as in :class:`BertForPretraining`, so both share state-dict names.
    """

    def __init__(self, bert: BertModel, *, num_classes: int, dropout: float = 0.1, pooling: nn.Module | None = None):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = num_classes
        self.bert = bert
        self.pooling = ClsPooling() if pooling is None else pooling
        self.head = ClassificationHead(bert.d_model, num_classes, dropout=dropout)
        self.encoder_frozen = False

    def freeze_encoder(self) -> None:
        """Feature-based transfer: the encoder gets no gradient and stays in eval mode (no dropout, fixed
        norm statistics), so it computes the same features for a text at every step; only the head learns."""
        self.bert.requires_grad_(False)
        self.encoder_frozen = True
        self.bert.eval()

    def train(self, mode: bool = True) -> BertClassifier:
        super().train(mode)
        if self.encoder_frozen:
            self.bert.eval()
        return self

    def forward(self, tokens: Tensor, segments: Tensor | None = None, valid_lens: Tensor | None = None) -> ClassifierOutput:
        """``tokens``/``segments`` (B, T), ``valid_lens`` (B,) as for :class:`BertModel`."""
        pooled = self.pooling(self.bert(tokens, segments, valid_lens))  # (B, D)
        return ClassifierOutput(self.head(pooled), pooled)
