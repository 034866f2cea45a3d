"""A stack of Transformer blocks: the Transformer encoder (and BERT's), or with cross-attention its decoder.

Shape legend: B batch, T length of ``x``, S memory length, D model dim, H heads.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from torch import Tensor, nn

from attnlab.attention.multihead import Rotation
from attnlab.layers.blocks import BlockCache, TransformerBlock
from attnlab.layers.residual import residual_class


class StackOutput(NamedTuple):
    hidden: Tensor  # (B, T, D)
    self_weights: list[Tensor | None]  # per layer (B, H, T, T) when asked for
    cross_weights: list[Tensor | None]  # per layer (B, H, T, S) when asked for


class TransformerStack(nn.Module):
    """``num_layers`` identical blocks, then a final norm for pre-norm placement (identity for post-norm)."""

    def __init__(
        self,
        num_layers: int,
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
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, num_heads, d_ff, scorer, norm, placement, dropout, activation, cross_attention, bias)
            for _ in range(num_layers)
        )
        self.final_norm = residual_class(placement).final_norm(norm, d_model)

    def new_caches(self) -> list[BlockCache]:
        return [BlockCache() for _ in self.blocks]

    def forward(
        self,
        x: Tensor,
        padding_mask: Tensor | None = None,
        causal: bool = False,
        memory: Tensor | None = None,
        memory_padding_mask: Tensor | None = None,
        rotate: Rotation | None = None,
        caches: list[BlockCache] | None = None,
        need_weights: bool = False,
    ) -> StackOutput:
        self_weights, cross_weights = [], []
        for index, block in enumerate(self.blocks):
            out = block(
                x, padding_mask, causal, memory, memory_padding_mask, rotate,
                None if caches is None else caches[index], need_weights,
            )
            x = out.hidden
            self_weights.append(out.self_weights)
            cross_weights.append(out.cross_weights)
        query_mask = None if caches is not None else padding_mask
        return StackOutput(self.final_norm(x, query_mask), self_weights, cross_weights)
