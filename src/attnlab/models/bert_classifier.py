"""BERT for classification (Devlin et al., 2019, sec. 4.1 and fig. 4; d2l 16.6): a pretrained encoder plus one new
output layer on the pooled ``[CLS]`` vector.

Shape legend: B batch, T sequence length, D model dim, C classes.

The point of the paper's fine-tuning recipe is that the only new parameters are that output layer; every
encoder weight starts from pretraining and is either fine-tuned with it or, for feature-based transfer
(ELMo-style), frozen (:meth:`BertClassifier.freeze_encoder`). Pretrained weights are read and loaded into
``bert`` by :mod:`attnlab.lit.pretrained`; pretraining heads (masked LM, next sentence) are dropped.
"""
from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn

from attnlab.models.bert import BertModel, init_bert_weights


class ClassifierOutput(NamedTuple):
    logits: Tensor  # (B, C)
    pooled: Tensor  # (B, D) the pooled [CLS] vector the output layer reads


class ClassificationHead(nn.Module):
    """The new output layer: dropout, then one linear map from the pooled [CLS] vector to class scores."""

    def __init__(self, d_model: int, num_classes: int, *, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(d_model, num_classes)
        init_bert_weights(self.output)

    def forward(self, pooled: Tensor) -> Tensor:
        return self.output(self.dropout(pooled))  # (B, C)


class BertClassifier(nn.Module):
    """A built :class:`BertModel` + :class:`ClassificationHead` with ``num_classes`` outputs and ``dropout``.

    The encoder sits under ``bert`` as in :class:`BertForPretraining`, so both share state-dict names.
    """

    def __init__(self, bert: BertModel, *, num_classes: int, dropout: float = 0.1):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = num_classes
        self.bert = bert
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
        pooled = self.bert(tokens, segments, valid_lens).pooled  # (B, D)
        return ClassifierOutput(self.head(pooled), pooled)
