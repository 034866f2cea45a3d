"""Single-head attention: scorer -> masked softmax -> dropout -> weighted sum of values (d2l 11.3)."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from attnlab.attention.functional import masked_softmax
from attnlab.attention.scorers import Scorer


class AttentionOutput(NamedTuple):
    output: Tensor  # (B, Tq, Dv) or (B, Tq, D) after the output projection
    weights: Tensor | None  # (B, Tq, Tk) or (B, H, Tq, Tk); None unless asked for


class Attention(nn.Module):
    """Attention pooling with an injected scorer (Bahdanau's additive, Luong's dot/general, ...)."""

    def __init__(self, scorer: Scorer, dropout: float = 0.0):
        super().__init__()
        self.scorer = scorer
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        queries: Tensor,
        keys: Tensor,
        values: Tensor,
        valid_lens: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> AttentionOutput:
        if not (queries.shape[0] == keys.shape[0] == values.shape[0]):
            raise ValueError(
                f"batch sizes differ: queries {queries.shape[0]}, keys {keys.shape[0]}, values {values.shape[0]}"
            )
        if keys.shape[-2] != values.shape[-2]:
            raise ValueError(f"keys have {keys.shape[-2]} positions but values have {values.shape[-2]}")
        scores = self.scorer(queries, keys)  # (B, Tq, Tk)
        weights = masked_softmax(scores, valid_lens, mask)
        return AttentionOutput(torch.matmul(self.dropout(weights), values), weights)  # (B, Tq, Dv)
