"""A translation model around ``torch.nn.Transformer``: its own embeddings (scaled by sqrt(D), sinusoidal
positions, dropout) and output layer (tied to the target embedding), at attnlab's sizes.

The encoder and decoder are passed in without their final LayerNorm (post-norm stacks need none), so the
parameter count equals attnlab's Transformer exactly.

Shape legend: B batch, S source length, T target length, D model dim, V target vocabulary.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from bench.reference.explicit_transformer import ExplicitEmbedding


class TorchTransformerMT(nn.Module):
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
        self.pad_id = pad_id
        self.src_embed = ExplicitEmbedding(src_vocab_size, d_model, pad_id, max_len, dropout)
        self.tgt_embed = ExplicitEmbedding(tgt_vocab_size, d_model, pad_id, max_len, dropout)
        layer = dict(d_model=d_model, nhead=num_heads, dim_feedforward=d_ff, dropout=dropout, activation=activation,
                     batch_first=True)
        encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**layer), num_encoder_layers, norm=None,
                                        enable_nested_tensor=False)
        decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**layer), num_decoder_layers, norm=None)
        self.transformer = nn.Transformer(d_model, num_heads, custom_encoder=encoder, custom_decoder=decoder,
                                          batch_first=True)
        self.output_proj = nn.Linear(d_model, tgt_vocab_size)
        if tie_output:
            self.output_proj.weight = self.tgt_embed.embedding.weight

    def forward(self, src: Tensor, src_lens: Tensor, tgt_in: Tensor) -> Tensor:
        src_pad = torch.arange(src.shape[1], device=src.device) >= src_lens.unsqueeze(1)  # (B, S) True = padding
        length = tgt_in.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=tgt_in.device).triu(1)  # (T, T) True = blocked
        hidden = self.transformer(
            self.src_embed(src), self.tgt_embed(tgt_in),
            tgt_mask=causal, src_key_padding_mask=src_pad, tgt_key_padding_mask=tgt_in == self.pad_id,
            memory_key_padding_mask=src_pad, tgt_is_causal=True,
        )
        return self.output_proj(hidden)  # (B, T, V)
