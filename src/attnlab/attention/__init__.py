"""The attention core: pure masking functions, scorers, single- and multi-head attention.

Plain PyTorch; imports neither Lightning nor Hydra.
"""
from attnlab.attention.attention import Attention, AttentionOutput
from attnlab.attention.functional import causal_mask, masked_softmax, sequence_mask
from attnlab.attention.multihead import KVCache, MultiHeadAttention
from attnlab.attention.scorers import AdditiveScorer, DotProductScorer, GeneralScorer, ScaledDotProductScorer, Scorer

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
