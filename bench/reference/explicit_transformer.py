"""The encoder-decoder Transformer on d2l's explicit attention path (d2l 11.7), sized and named like
``attnlab.models.transformer.Transformer`` (post-norm, sinusoidal positions, tied output projection).

Shape legend: B batch, S source length, T target length, D model dim, V target vocabulary.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from bench.reference.explicit import ExplicitStack, sinusoids


class ExplicitEmbedding(nn.Module):
    """``dropout(sqrt(D) * E[x] + P)``."""

    def __init__(self, vocab_size: int, d_model: int, pad_id: int, max_len: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.register_buffer("table", sinusoids(max_len, d_model), persistent=False)  # (max_len, D)
        self.scale = math.sqrt(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.dropout(self.embedding(tokens) * self.scale + self.table[: tokens.shape[1]])  # (B, T, D)


class ExplicitTransformer(nn.Module):
    """Teacher-forced ``forward(src, src_lens, tgt_in) -> logits``: the encoder masks source keys by
    ``src_lens``; the decoder's self-attention is causal through per-query valid lengths ``1..T`` (d2l's
    ``dec_valid_lens``), its cross-attention masks by ``src_lens``."""

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        pad_id: int,
        d_model: int = 256,
        num_heads: int = 4,
        num_encoder_layers: int = 2,
        num_decoder_layers: int = 2,
        d_ff: int = 64,
        dropout: float = 0.2,
        activation: str = "relu",
        max_len: int = 1024,
        tie_output: bool = True,
    ):
        super().__init__()
        self.src_embed = ExplicitEmbedding(src_vocab_size, d_model, pad_id, max_len, dropout)
        self.tgt_embed = ExplicitEmbedding(tgt_vocab_size, d_model, pad_id, max_len, dropout)
        self.encoder = ExplicitStack(num_encoder_layers, d_model, num_heads, d_ff, dropout, activation)
        self.decoder = ExplicitStack(num_decoder_layers, d_model, num_heads, d_ff, dropout, activation, cross_attention=True)
        self.output_proj = nn.Linear(d_model, tgt_vocab_size)
        if tie_output:
            self.output_proj.weight = self.tgt_embed.embedding.weight

    def forward(self, src: Tensor, src_lens: Tensor, tgt_in: Tensor) -> Tensor:
        memory = self.encoder(self.src_embed(src), src_lens)  # (B, S, D)
        batch, length = tgt_in.shape
        causal_lens = torch.arange(1, length + 1, device=tgt_in.device).expand(batch, length)  # (B, T)
        hidden = self.decoder(self.tgt_embed(tgt_in), causal_lens, memory, src_lens)  # (B, T, D)
        return self.output_proj(hidden)  # (B, T, V)
