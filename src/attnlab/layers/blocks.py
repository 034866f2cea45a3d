"""The Transformer block shared by the Transformer encoder, decoder and BERT.

Shape legend: B batch, T target/self length, S source (memory) length, D model dim, H heads.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from torch import Tensor, nn

from attnlab.attention.multihead import KVCache, MultiHeadAttention, Rotation
from attnlab.layers.feedforward import PositionwiseFeedForward
from attnlab.layers.residual import residual_class


@dataclass
class BlockCache:
    """Per-block decoding state: growing self-attention keys/values, static cross-attention ones."""

    self_attention: KVCache = field(default_factory=KVCache)
    cross_attention: KVCache = field(default_factory=lambda: KVCache(static=True))

    def reorder(self, batch_indices: Tensor) -> None:
        self.self_attention.reorder(batch_indices)
        self.cross_attention.reorder(batch_indices)


class BlockOutput(NamedTuple):
    hidden: Tensor  # (B, T, D)
    self_weights: Tensor | None  # (B, H, T, T) when asked for
    cross_weights: Tensor | None  # (B, H, T, S) when asked for


class TransformerBlock(nn.Module):
    """Self-attention, optional cross-attention to a memory, and a position-wise FFN, each with add & norm.

    ``scorer`` and ``norm`` are factories (``scorer(Dh, Dh)``, ``norm(D)``) so every sublayer gets its own.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        scorer: Callable[[int, int], nn.Module],
        norm: Callable[[int], nn.Module],
        placement: str = "post",
        dropout: float = 0.1,
        activation: str = "relu",
        cross_attention: bool = False,
        bias: bool = True,
    ):
        super().__init__()
        residual = residual_class(placement)
        self.self_attention = MultiHeadAttention(d_model, num_heads, scorer, dropout, bias)
        self.self_residual = residual(norm(d_model), dropout)
        self.cross_attention = MultiHeadAttention(d_model, num_heads, scorer, dropout, bias) if cross_attention else None
        self.cross_residual = residual(norm(d_model), dropout) if cross_attention else None
        self.feed_forward = PositionwiseFeedForward(d_model, d_ff, activation)
        self.ffn_residual = residual(norm(d_model), dropout)

    def forward(
        self,
        x: Tensor,
        padding_mask: Tensor | None = None,
        causal: bool = False,
        memory: Tensor | None = None,
        memory_padding_mask: Tensor | None = None,
        rotate: Rotation | None = None,
        cache: BlockCache | None = None,
        need_weights: bool = False,
    ) -> BlockOutput:
        """``x`` (B, T, D); ``padding_mask`` (B, T_keys) True = real token (with a cache: all past keys)."""
        query_mask = None if cache is not None or padding_mask is None else padding_mask  # (B, T) for batch norm
        h = self.self_residual.sublayer_input(x, query_mask)
        attended = self.self_attention(
            h, h, h, key_padding_mask=padding_mask, is_causal=causal, need_weights=need_weights,
            rotate=rotate, cache=None if cache is None else cache.self_attention,
        )
        x = self.self_residual.combine(x, attended.output, query_mask)
        cross_weights = None
        if self.cross_attention is not None:
            if memory is None:
                raise ValueError("this block has cross-attention and needs the encoder memory")
            h = self.cross_residual.sublayer_input(x, query_mask)
            crossed = self.cross_attention(
                h, memory, memory, key_padding_mask=memory_padding_mask, need_weights=need_weights,
                cache=None if cache is None else cache.cross_attention,
            )
            x = self.cross_residual.combine(x, crossed.output, query_mask)
            cross_weights = crossed.weights
        h = self.ffn_residual.sublayer_input(x, query_mask)
        x = self.ffn_residual.combine(x, self.feed_forward(h), query_mask)
        return BlockOutput(x, attended.weights, cross_weights)
