"""Reusable non-attention layers: positional encodings, norms, FFN, the Transformer block and stack."""
from attnlab.layers.blocks import (
    BlockCache,
    BlockInputs,
    BlockOutput,
    PostNormBlock,
    PreNormBlock,
    TransformerBlock,
    placement_block,
)
from attnlab.layers.feedforward import PositionwiseFeedForward
from attnlab.layers.norm import MaskedBatchNorm, Norm, real_tokens
from attnlab.layers.positional import (
    LearnedPositionalEncoding,
    NoPositionalEncoding,
    PositionalEncoding,
    RotaryPositionalEncoding,
    SinusoidalPositionalEncoding,
)
from attnlab.layers.stack import StackOutput, TransformerStack

__all__ = [
    "BlockCache",
    "BlockInputs",
    "BlockOutput",
    "LearnedPositionalEncoding",
    "MaskedBatchNorm",
    "NoPositionalEncoding",
    "Norm",
    "PositionalEncoding",
    "PositionwiseFeedForward",
    "PostNormBlock",
    "PreNormBlock",
    "RotaryPositionalEncoding",
    "SinusoidalPositionalEncoding",
    "StackOutput",
    "TransformerBlock",
    "TransformerStack",
    "placement_block",
    "real_tokens",
]
