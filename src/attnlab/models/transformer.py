"""The encoder-decoder Transformer for machine translation (Vaswani et al., 2017; d2l 11.7).

Both halves are ``attnlab.layers.stack.TransformerStack``s of one injected block factory (its class is the norm
placement; scorer, norm, FFN width and activation are its arguments): the encoder without cross-attention, the
decoder with causal self-attention and cross-attention to the encoder output. Every ablation is a config choice.

Shape legend: B batch, S source length, T target length, D model dim, H heads, V target vocabulary.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import torch
from torch import Tensor, nn

from attnlab.attention.functional import sequence_mask
from attnlab.layers.blocks import BlockCache, BlockFactory, BlockInputs
from attnlab.layers.positional import PositionalEncoding, PositionalEncodingFactory
from attnlab.layers.stack import TransformerStack
from attnlab.models.decoding import DecoderStep, Seq2SeqOutput, check_special_ids


class EncoderOutput(NamedTuple):
    memory: Tensor  # (B, S, D)
    padding_mask: Tensor  # (B, S) True = real source token
    self_weights: list[Tensor | None]  # per layer (B, H, S, S) when asked for


class TokenEmbedding(nn.Module):
    """``dropout(PE(sqrt(D) * E[x]))`` (sec. 3.4 and 5.4): the scale keeps the embeddings, initialised with
    std ``D^-1/2`` to suit the tied output projection, on the scale of the positional encoding."""

    def __init__(self, embedding: nn.Embedding, positions: PositionalEncoding, dropout: float):
        super().__init__()
        self.embedding = embedding
        self.positions = positions
        self.scale = math.sqrt(embedding.embedding_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: Tensor, offset: int = 0) -> Tensor:
        return self.dropout(self.positions(self.embedding(tokens) * self.scale, offset))  # (B, T, D)


@dataclass
class TransformerDecodingState:
    """What incremental decoding carries: the encoded source, the tokens fed so far and, with the cache on,
    every decoder block's keys/values (cross-attention ones computed once, self-attention ones growing)."""

    memory: Tensor  # (B, S, D)
    memory_mask: Tensor  # (B, S)
    prefix: Tensor  # (B, t) tokens fed so far, <bos> first
    caches: list[BlockCache] | None  # one per decoder block; None: recompute the prefix every step

    def reorder(self, batch_indices: Tensor) -> None:
        self.memory = self.memory.index_select(0, batch_indices)
        self.memory_mask = self.memory_mask.index_select(0, batch_indices)
        self.prefix = self.prefix.index_select(0, batch_indices)
        for cache in self.caches or ():
            cache.reorder(batch_indices)


class Transformer(nn.Module):
    """Encoder-decoder Transformer of ``block(d_model, num_heads, cross_attention=...)`` layers (a ``partial`` of
    :class:`attnlab.layers.blocks.PostNormBlock` or ``PreNormBlock``) with ``pos_encoding(D, H, max_len)`` on
    both sides; ``dropout`` is the embeddings' (the blocks have their own).

    ``tie_output`` makes the decoder's input embedding the pre-softmax projection (Press & Wolf, 2017;
    sec. 3.4); ``share_embeddings`` (a joint source/target vocabulary) makes it the encoder's embedding too.
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        *,
        block: BlockFactory,
        pos_encoding: PositionalEncodingFactory,
        pad_id: int,
        bos_id: int,
        eos_id: int,
        d_model: int = 256,
        num_heads: int = 4,
        num_encoder_layers: int = 2,
        num_decoder_layers: int = 2,
        dropout: float = 0.2,
        max_len: int = 1024,
        tie_output: bool = True,
        share_embeddings: bool = False,
    ):
        super().__init__()
        for name, size in (("src_vocab_size", src_vocab_size), ("tgt_vocab_size", tgt_vocab_size)):
            if size < 1:
                raise ValueError(f"{name} must be >= 1, got {size}")
        check_special_ids(tgt_vocab_size, pad_id=pad_id, bos_id=bos_id, eos_id=eos_id)
        if share_embeddings and src_vocab_size != tgt_vocab_size:
            raise ValueError(
                f"share_embeddings needs one joint vocabulary, but src_vocab_size={src_vocab_size} != "
                f"tgt_vocab_size={tgt_vocab_size}; train a joint tokenizer (data.joint_vocab=true) or set "
                f"share_embeddings=false"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.d_model, self.num_heads = d_model, num_heads
        target_embedding = nn.Embedding(tgt_vocab_size, d_model, padding_idx=pad_id)
        source_embedding = (
            target_embedding if share_embeddings else nn.Embedding(src_vocab_size, d_model, padding_idx=pad_id)
        )
        self.src_embed = TokenEmbedding(source_embedding, pos_encoding(d_model, num_heads, max_len), dropout)
        self.tgt_embed = TokenEmbedding(target_embedding, pos_encoding(d_model, num_heads, max_len), dropout)
        self.encoder = TransformerStack(partial(block, d_model, num_heads, cross_attention=False), num_encoder_layers)
        self.decoder = TransformerStack(partial(block, d_model, num_heads, cross_attention=True), num_decoder_layers)
        self.output_proj = nn.Linear(d_model, tgt_vocab_size)
        self._init_weights()
        if tie_output:
            self.output_proj.weight = target_embedding.weight

    def _init_weights(self) -> None:
        """Embeddings ~ N(0, D^-1/2), so ``sqrt(D) * E[x]`` has unit scale and tied logits start small."""
        for embedding in dict.fromkeys([self.src_embed.embedding, self.tgt_embed.embedding]):  # shared: once
            nn.init.normal_(embedding.weight, std=self.d_model**-0.5)
            with torch.no_grad():
                embedding.weight[self.pad_id].zero_()
        nn.init.zeros_(self.output_proj.bias)

    # ---- encoder ---------------------------------------------------------------------------------------------
    def encode(self, src: Tensor, src_lens: Tensor, need_weights: bool = False) -> EncoderOutput:
        """``src`` (B, S) token ids, ``src_lens`` (B,) valid lengths in 1..S."""
        if src.dim() != 2 or src_lens.shape != src.shape[:1]:
            raise ValueError(
                f"expected src (B, S) and src_lens (B,), got {tuple(src.shape)} and {tuple(src_lens.shape)}"
            )
        padding_mask = sequence_mask(src_lens, src.shape[1])  # (B, S), built once for every layer
        inputs = BlockInputs(
            padding_mask=padding_mask, rotate=self.src_embed.positions.rotate, norm_mask=padding_mask,
            need_weights=need_weights,
        )
        encoded = self.encoder(self.src_embed(src), inputs)
        return EncoderOutput(encoded.hidden, padding_mask, encoded.self_weights)

    # ---- teacher forcing -------------------------------------------------------------------------------------
    def forward(self, src: Tensor, src_lens: Tensor, tgt_in: Tensor, need_weights: bool = False) -> Seq2SeqOutput:
        """Logits of ``y`` given ``tgt_in`` (B, T) = <bos> y, right-padded with pad_id, under a causal mask.

        Decoder self-attention needs no key mask: under the causal mask a real position sees only earlier
        positions, all real, so SDPA's ``is_causal`` path runs; padded positions compute garbage nobody reads."""
        encoded = self.encode(src, src_lens, need_weights)
        inputs = BlockInputs(
            causal=True, memory=encoded.memory, memory_padding_mask=encoded.padding_mask,
            rotate=self.tgt_embed.positions.rotate, norm_mask=tgt_in != self.pad_id, need_weights=need_weights,
        )
        decoded = self.decoder(self.tgt_embed(tgt_in), inputs)
        return Seq2SeqOutput(
            self.output_proj(decoded.hidden), encoded.self_weights, decoded.self_weights, decoded.cross_weights
        )

    # ---- incremental decoding (attnlab.models.decoding.Seq2SeqNet) ------------------------------------------
    def start_decoding(self, src: Tensor, src_lens: Tensor, use_cache: bool = True) -> TransformerDecodingState:
        encoded = self.encode(src, src_lens)
        prefix = src.new_empty(src.shape[0], 0)  # (B, 0)
        caches = self.decoder.new_caches() if use_cache else None
        return TransformerDecodingState(encoded.memory, encoded.padding_mask, prefix, caches)

    def decode_step(self, state: TransformerDecodingState, tokens: Tensor) -> DecoderStep:
        """Feed ``tokens`` (B,); with caches only the new position runs through the decoder."""
        state.prefix = torch.cat([state.prefix, tokens.unsqueeze(1)], dim=1)  # (B, t + 1)
        if state.caches is None:
            inputs, offset = state.prefix, 0  # recompute every position
        else:
            inputs, offset = tokens.unsqueeze(1), state.prefix.shape[1] - 1  # (B, 1) at position t
        context = BlockInputs(
            causal=True, memory=state.memory, memory_padding_mask=state.memory_mask,
            rotate=self.tgt_embed.positions.rotate,
        )
        decoded = self.decoder(self.tgt_embed(inputs, offset), context, state.caches)
        return DecoderStep(self.output_proj(decoded.hidden[:, -1]), state)  # (B, V)
