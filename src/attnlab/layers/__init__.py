"""Reusable non-attention layers: positional encodings, norms, FFN, residual wiring, the Transformer block."""
from typing import Protocol

from torch import Tensor

from attnlab.layers.blocks import BlockCache, BlockOutput, TransformerBlock
from attnlab.layers.feedforward import PositionwiseFeedForward
from attnlab.layers.norm import LayerNorm, MaskedBatchNorm, RMSNorm
from attnlab.layers.positional import (
    LearnedPositionalEncoding,
    NoPositionalEncoding,
    RotaryPositionalEncoding,
    SinusoidalPositionalEncoding,
)
from attnlab.layers.residual import PostNormResidual, PreNormResidual


class PositionalEncoding(Protocol):
    """Built as ``Encoding(d_model, num_heads, max_len)``."""

    def __call__(self, x: Tensor, offset: int = 0) -> Tensor: ...  # (B, T, D) -> (B, T, D)

    def rotate(self, x: Tensor, offset: int = 0) -> Tensor: ...  # (B, H, T, Dh) -> (B, H, T, Dh)


class Norm(Protocol):
    """Built as ``Norm(d_model)``; ``mask`` (B, T) marks real tokens."""

    def __call__(self, x: Tensor, mask: Tensor | None = None) -> Tensor: ...


__all__ = [
    "BlockCache",
    "BlockOutput",
    "LayerNorm",
    "LearnedPositionalEncoding",
    "MaskedBatchNorm",
    "NoPositionalEncoding",
    "Norm",
    "PositionalEncoding",
    "PositionwiseFeedForward",
    "PostNormResidual",
    "PreNormResidual",
    "RMSNorm",
    "RotaryPositionalEncoding",
    "SinusoidalPositionalEncoding",
    "TransformerBlock",
]
