"""A stack of Transformer blocks: the Transformer encoder (and BERT's), or with cross-attention its decoder.

Shape legend: B batch, T length of ``x``, S memory length, D model dim, H heads.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from torch import Tensor, nn

from attnlab.layers.blocks import BlockCache, BlockInputs, TransformerBlock
from attnlab.layers.norm import real_tokens


class StackOutput(NamedTuple):
    hidden: Tensor  # (B, T, D)
    self_weights: list[Tensor | None]  # per layer (B, H, T, T) when asked for
    cross_weights: list[Tensor | None]  # per layer (B, H, T, S) when asked for


class TransformerStack(nn.Module):
    """``num_layers`` blocks made by ``block()``, then the final norm their placement needs (pre-norm: one
    more norm; post-norm: none)."""

    def __init__(self, block: Callable[[], TransformerBlock], num_layers: int):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.blocks = nn.ModuleList(block() for _ in range(num_layers))
        self.final_norm = self.blocks[-1].final_norm()

    def new_caches(self) -> list[BlockCache]:
        return [BlockCache() for _ in self.blocks]

    def forward(self, x: Tensor, inputs: BlockInputs = BlockInputs(), caches: list[BlockCache] | None = None) -> StackOutput:
        """``x`` (B, T, D); ``caches`` one per block for incremental decoding (then ``x`` holds the new positions)."""
        self_weights, cross_weights = [], []
        for index, block in enumerate(self.blocks):
            out = block(x, inputs, None if caches is None else caches[index])
            x = out.hidden
            self_weights.append(out.self_weights)
            cross_weights.append(out.cross_weights)
        with real_tokens(inputs.norm_mask):
            return StackOutput(self.final_norm(x), self_weights, cross_weights)
