"""The Transformer block shared by the Transformer encoder, decoder and BERT, in its two norm placements.

``PostNormBlock`` is ``x = norm(x + dropout(sublayer(x)))`` (Vaswani et al., 2017; BERT; d2l's AddNorm),
``PreNormBlock`` is ``x = x + dropout(sublayer(norm(x)))`` (Xiong et al., 2020): one line per sublayer each. Both
hold the same sublayers under the same names, so a state dict fits either placement. Norms are called as
``norm(x)``: a block marks ``inputs.norm_mask`` as the real tokens (``attnlab.layers.norm.real_tokens``) for batch
norm around its sublayers, so a block recomputed by activation checkpointing sees the same mark.

Shape legend: B batch, T target/self length, S source (memory) length, D model dim, H heads.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from torch import Tensor, nn

from attnlab.attention.attention import AttentionOutput
from attnlab.attention.multihead import KVCache, MultiHeadAttention, Rotation
from attnlab.attention.scorers import Scorer
from attnlab.layers.feedforward import PositionwiseFeedForward
from attnlab.layers.norm import NormFactory, real_tokens


@dataclass
class BlockCache:
    """Per-block decoding state: growing self-attention keys/values, static cross-attention ones."""

    self_attention: KVCache = field(default_factory=KVCache)
    cross_attention: KVCache = field(default_factory=lambda: KVCache(static=True))

    def reorder(self, batch_indices: Tensor) -> None:
        self.self_attention.reorder(batch_indices)
        self.cross_attention.reorder(batch_indices)


@dataclass(frozen=True)
class BlockInputs:
    """What every block of a stack reads besides the hidden states ``x`` (B, T, D)."""

    padding_mask: Tensor | None = None  # (B, T_keys) keys self-attention may see, True = real; None: all
    causal: bool = False  # no attention to later positions (decoder); alone, it is SDPA's is_causal fast path
    memory: Tensor | None = None  # (B, S, D) what cross-attention reads (the encoder output)
    memory_padding_mask: Tensor | None = None  # (B, S) True = real source token
    rotate: Rotation | None = None  # rotary positions for self-attention queries/keys
    norm_mask: Tensor | None = None  # (B, T) real tokens, read only by a norm pooling over tokens (batch norm)
    need_weights: bool = False  # return attention weights (takes the explicit, unfused path)


class BlockOutput(NamedTuple):
    hidden: Tensor  # (B, T, D)
    self_weights: Tensor | None  # (B, H, T, T) when asked for
    cross_weights: Tensor | None  # (B, H, T, S) when asked for


class TransformerBlock(nn.Module):
    """Self-attention, optional cross-attention to a memory, and a position-wise FFN, each a residual branch.

    Built as ``block(d_model, num_heads, cross_attention=...)`` by a stack's model from a ``partial`` holding the
    rest; ``scorer`` and ``norm`` are factories (``scorer(Dh, Dh)``, ``norm(D)``), so every sublayer gets its own.
    Subclasses write ``sublayers`` for one norm placement.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        *,
        d_ff: int,
        scorer: Callable[[int, int], Scorer],
        norm: NormFactory,
        dropout: float = 0.1,
        activation: str = "relu",
        cross_attention: bool = False,
        bias: bool = True,
    ):
        super().__init__()
        self.d_model, self.norm_factory = d_model, norm
        self.self_attention = MultiHeadAttention(d_model, num_heads, scorer, dropout=dropout, bias=bias)
        self.self_norm = norm(d_model)
        self.cross_attention = (
            MultiHeadAttention(d_model, num_heads, scorer, dropout=dropout, bias=bias) if cross_attention else None
        )
        self.cross_norm = norm(d_model) if cross_attention else nn.Identity()  # parameter-free in an encoder block
        self.feed_forward = PositionwiseFeedForward(d_model, d_ff, activation=activation)
        self.ffn_norm = norm(d_model)
        self.dropout = nn.Dropout(dropout)  # on each sublayer's output, before the residual sum

    def final_norm(self) -> nn.Module:
        """What a stack of these blocks applies to its output."""
        raise NotImplementedError

    def forward(self, x: Tensor, inputs: BlockInputs = BlockInputs(), cache: BlockCache | None = None) -> BlockOutput:
        """``x`` (B, T, D); batch norm counts the ``inputs.norm_mask`` tokens, here and when recomputed."""
        with real_tokens(inputs.norm_mask):
            return self.sublayers(x, inputs, cache)

    def sublayers(self, x: Tensor, inputs: BlockInputs, cache: BlockCache | None) -> BlockOutput:
        """The residual branches in this placement's order: one line each."""
        raise NotImplementedError

    def attend_self(self, h: Tensor, inputs: BlockInputs, cache: BlockCache | None) -> AttentionOutput:
        return self.self_attention(
            h, h, h, key_padding_mask=inputs.padding_mask, is_causal=inputs.causal, need_weights=inputs.need_weights,
            rotate=inputs.rotate, cache=None if cache is None else cache.self_attention,
        )

    def attend_memory(self, h: Tensor, inputs: BlockInputs, cache: BlockCache | None) -> AttentionOutput | None:
        """Cross-attention from ``h`` to the memory; None in a block without cross-attention (an encoder's)."""
        if self.cross_attention is None:
            return None
        if inputs.memory is None:
            raise ValueError("this block has cross-attention and needs the encoder memory")
        return self.cross_attention(
            h, inputs.memory, inputs.memory, key_padding_mask=inputs.memory_padding_mask,
            need_weights=inputs.need_weights, cache=None if cache is None else cache.cross_attention,
        )


class PostNormBlock(TransformerBlock):
    """``x = norm(x + dropout(sublayer(x)))`` per sublayer: the original Transformer, BERT and d2l."""

    def final_norm(self) -> nn.Module:
        return nn.Identity()  # the last sublayer already normalised the output

    def sublayers(self, x: Tensor, inputs: BlockInputs, cache: BlockCache | None) -> BlockOutput:
        attended = self.attend_self(x, inputs, cache)
        x = self.self_norm(x + self.dropout(attended.output))
        crossed = self.attend_memory(x, inputs, cache)
        x = x if crossed is None else self.cross_norm(x + self.dropout(crossed.output))
        x = self.ffn_norm(x + self.dropout(self.feed_forward(x)))
        return BlockOutput(x, attended.weights, None if crossed is None else crossed.weights)


class PreNormBlock(TransformerBlock):
    """``x = x + dropout(sublayer(norm(x)))`` per sublayer: stabler deep stacks, but the output is unnormalised."""

    def final_norm(self) -> nn.Module:
        return self.norm_factory(self.d_model)

    def sublayers(self, x: Tensor, inputs: BlockInputs, cache: BlockCache | None) -> BlockOutput:
        attended = self.attend_self(self.self_norm(x), inputs, cache)
        x = x + self.dropout(attended.output)
        crossed = self.attend_memory(self.cross_norm(x), inputs, cache)
        x = x if crossed is None else x + self.dropout(crossed.output)
        x = x + self.dropout(self.feed_forward(self.ffn_norm(x)))
        return BlockOutput(x, attended.weights, None if crossed is None else crossed.weights)


PLACEMENTS: dict[str, type[TransformerBlock]] = {"post": PostNormBlock, "pre": PreNormBlock}  # norm.placement=


def placement_block(placement: str) -> type[TransformerBlock]:
    """The block class of a norm placement name (``norm.placement`` in the configs)."""
    if placement not in PLACEMENTS:
        raise ValueError(f"norm placement={placement!r} is not one of {sorted(PLACEMENTS)}")
    return PLACEMENTS[placement]


BlockFactory = Callable[..., TransformerBlock]  # block(d_model, num_heads, cross_attention=...)
