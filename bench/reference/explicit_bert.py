"""BERT on d2l's explicit attention path (d2l 15.8), sized and named like
``attnlab.models.bert.BertForPretraining``: token + segment + learned position embeddings with a norm, post-norm
GELU blocks, a pooler, the masked-LM head gathered to the predicted positions (as d2l's ``MaskLM``) with its
output tied to the token embedding, and the next-sentence head.

Shape legend: B batch, T length, P prediction slots, D model dim, V vocabulary.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from bench.reference.explicit import ExplicitStack


class ExplicitPretrainingOutput(NamedTuple):
    mlm_logits: Tensor  # (B, P, V)
    nsp_logits: Tensor  # (B, 2)


class LearnedPositions(nn.Module):
    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.embedding = nn.Embedding(max_len, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.embedding.weight[: x.shape[1]]  # (B, T, D)


class ExplicitEmbeddings(nn.Module):
    def __init__(self, vocab_size: int, d_model: int, max_len: int, pad_id: int, dropout: float):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.segment_embedding = nn.Embedding(2, d_model)
        self.position = LearnedPositions(max_len, d_model)
        self.norm = nn.LayerNorm(d_model, eps=1e-5)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: Tensor, segments: Tensor) -> Tensor:
        x = self.position(self.token_embedding(tokens) + self.segment_embedding(segments))
        return self.dropout(self.norm(x))  # (B, T, D)


class ExplicitPooler(nn.Module):
    def __init__(self, d_model: int):
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)

    def forward(self, hidden: Tensor) -> Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))  # (B, D)


class ExplicitBertModel(nn.Module):
    def __init__(self, vocab_size: int, pad_id: int, max_len: int, d_model: int, num_heads: int, num_layers: int,
                 d_ff: int, dropout: float, activation: str):
        super().__init__()
        self.embeddings = ExplicitEmbeddings(vocab_size, d_model, max_len, pad_id, dropout)
        self.encoder = ExplicitStack(num_layers, d_model, num_heads, d_ff, dropout, activation)
        self.pooler = ExplicitPooler(d_model)

    def forward(self, tokens: Tensor, segments: Tensor, valid_lens: Tensor) -> tuple[Tensor, Tensor]:
        hidden = self.encoder(self.embeddings(tokens, segments), valid_lens)  # (B, T, D)
        return hidden, self.pooler(hidden)


class ExplicitMaskedLM(nn.Module):
    """dense -> activation -> norm -> tied V-way projection (+ own bias), at the gathered positions only."""

    def __init__(self, token_embedding: nn.Embedding, activation: str):
        super().__init__()
        vocab_size, d_model = token_embedding.weight.shape
        self.dense = nn.Linear(d_model, d_model)
        self.activation = {"relu": nn.ReLU, "gelu": nn.GELU}[activation]()
        self.norm = nn.LayerNorm(d_model, eps=1e-5)
        self.decoder_weight = token_embedding.weight
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, hidden: Tensor, positions: Tensor) -> Tensor:
        batch, slots = positions.shape
        rows = torch.arange(batch, device=hidden.device).repeat_interleave(slots)  # (B * P,)
        picked = hidden[rows, positions.reshape(-1)].reshape(batch, slots, -1)  # (B, P, D), d2l's indexing
        h = self.norm(self.activation(self.dense(picked)))
        return nn.functional.linear(h, self.decoder_weight, self.bias)  # (B, P, V)


class NextSentence(nn.Module):
    def __init__(self, d_model: int):
        super().__init__()
        self.classifier = nn.Linear(d_model, 2)

    def forward(self, pooled: Tensor) -> Tensor:
        return self.classifier(pooled)


class ExplicitBertForPretraining(nn.Module):
    """``forward(tokens, segments, valid_lens, mlm_positions)`` as attnlab's BERT (keys past ``valid_lens``
    masked by the -1e6 fill; rows padded to a fixed length by the data)."""

    def __init__(
        self,
        vocab_size: int,
        pad_id: int,
        max_len: int,
        d_model: int = 128,
        num_heads: int = 2,
        num_layers: int = 2,
        d_ff: int = 256,
        dropout: float = 0.2,
        activation: str = "gelu",
    ):
        super().__init__()
        self.bert = ExplicitBertModel(vocab_size, pad_id, max_len, d_model, num_heads, num_layers, d_ff, dropout, activation)
        self.mlm_head = ExplicitMaskedLM(self.bert.embeddings.token_embedding, activation)
        self.nsp_head = NextSentence(d_model)

    def forward(self, tokens: Tensor, segments: Tensor, valid_lens: Tensor, mlm_positions: Tensor) -> ExplicitPretrainingOutput:
        hidden, pooled = self.bert(tokens, segments, valid_lens)
        return ExplicitPretrainingOutput(self.mlm_head(hidden, mlm_positions), self.nsp_head(pooled))
