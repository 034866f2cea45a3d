"""The attention core: pure masking functions, scorers, single- and multi-head attention.

Plain PyTorch; imports neither Lightning nor Hydra.
"""
from typing import Protocol

from torch import Tensor

from attnlab.attention.attention import Attention, AttentionOutput
from attnlab.attention.functional import causal_mask, masked_softmax, sequence_mask
from attnlab.attention.multihead import KVCache, MultiHeadAttention
from attnlab.attention.scorers import AdditiveScorer, DotProductScorer, GeneralScorer, ScaledDotProductScorer


class Scorer(Protocol):
    """Built as ``Scorer(query_dim, key_dim)``; maps queries (..., Tq, dq), keys (..., Tk, dk) to (..., Tq, Tk)."""

    def __call__(self, queries: Tensor, keys: Tensor) -> Tensor: ...


__all__ = [
    "AdditiveScorer",
    "Attention",
    "AttentionOutput",
    "DotProductScorer",
    "GeneralScorer",
    "KVCache",
    "MultiHeadAttention",
    "ScaledDotProductScorer",
    "Scorer",
    "causal_mask",
    "masked_softmax",
    "sequence_mask",
]
