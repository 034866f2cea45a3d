"""d2l's explicit attention path (d2l 11.3-11.7), the baseline attnlab's fused path is measured against.

Scores are formed as a full ``Q K^T`` matrix, masked by filling -1e6 at key positions past each valid length,
soft-maxed, dropped out and multiplied with V; the heads are folded into the batch dimension, and sequences are
padded to a fixed length by the caller. The modules carry attnlab's parameter names (``query_proj``,
``self_norm``, ``feed_forward.inner`` ...) so that an attnlab state dict loads into them.

Shape legend: B batch, H heads, B' = B * H, Tq/Tk query/key length, D model dim, Dh head dim.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

FILL = -1e6  # d2l's score for a masked key: tiny after softmax, but not zero


def masked_softmax(scores: Tensor, valid_lens: Tensor | None) -> Tensor:
    """Softmax over keys of ``scores`` (B', Tq, Tk); keys at or past ``valid_lens`` ((B',) or (B', Tq)) get
    the score -1e6 first (d2l's ``masked_softmax``; we use an out-of-place ``masked_fill``, which is faster
    than d2l's in-place boolean indexing, so the baseline is if anything flattered)."""
    if valid_lens is None:
        return torch.softmax(scores, dim=-1)
    num_queries, num_keys = scores.shape[-2:]
    if valid_lens.dim() == 1:
        valid_lens = valid_lens.repeat_interleave(num_queries)  # (B' * Tq,)
    keep = torch.arange(num_keys, device=scores.device) < valid_lens.reshape(-1, 1)  # (B' * Tq, Tk)
    filled = scores.reshape(-1, num_keys).masked_fill(~keep, FILL)
    return torch.softmax(filled.reshape(scores.shape), dim=-1)  # (B', Tq, Tk)


class DotProductAttention(nn.Module):
    """``softmax(Q K^T / sqrt(d)) V`` with the explicit mask (Vaswani et al., 2017, eq. 1)."""

    def __init__(self, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: Tensor, keys: Tensor, values: Tensor, valid_lens: Tensor | None) -> Tensor:
        scores = torch.bmm(queries, keys.transpose(1, 2)) / math.sqrt(queries.shape[-1])  # (B', Tq, Tk)
        weights = masked_softmax(scores, valid_lens)
        return torch.bmm(self.dropout(weights), values)  # (B', Tq, Dh)


class ExplicitMultiHeadAttention(nn.Module):
    """Separate Q/K/V projections, heads folded into the batch, one explicit attention over B * H rows."""

    def __init__(self, d_model: int, num_heads: int, dropout: float, bias: bool = True):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide d_model={d_model}")
        self.num_heads = num_heads
        self.query_proj = nn.Linear(d_model, d_model, bias=bias)
        self.key_proj = nn.Linear(d_model, d_model, bias=bias)
        self.value_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.attention = DotProductAttention(dropout)

    def _fold(self, x: Tensor) -> Tensor:
        batch, length, width = x.shape
        x = x.reshape(batch, length, self.num_heads, width // self.num_heads).permute(0, 2, 1, 3)  # (B, H, T, Dh)
        return x.reshape(batch * self.num_heads, length, -1)  # (B', T, Dh)

    def _unfold(self, x: Tensor) -> Tensor:
        folded, length, head_dim = x.shape
        x = x.reshape(folded // self.num_heads, self.num_heads, length, head_dim).permute(0, 2, 1, 3)  # (B, T, H, Dh)
        return x.reshape(x.shape[0], length, -1)  # (B, T, D)

    def forward(self, queries: Tensor, keys: Tensor, values: Tensor, valid_lens: Tensor | None) -> Tensor:
        """``valid_lens`` (B,) or (B, Tq), repeated for every head."""
        q, k, v = self._fold(self.query_proj(queries)), self._fold(self.key_proj(keys)), self._fold(self.value_proj(values))
        if valid_lens is not None:
            valid_lens = valid_lens.repeat_interleave(self.num_heads, dim=0)  # (B',) or (B', Tq)
        return self.out_proj(self._unfold(self.attention(q, k, v, valid_lens)))


class FeedForward(nn.Module):
    """Position-wise FFN with dropout after the activation, laid out as attnlab's."""

    def __init__(self, d_model: int, d_ff: int, activation: str, dropout: float):
        super().__init__()
        self.inner = nn.Linear(d_model, d_ff)
        self.activation = {"relu": nn.ReLU, "gelu": nn.GELU}[activation]()
        self.dropout = nn.Dropout(dropout)
        self.outer = nn.Linear(d_ff, d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.outer(self.dropout(self.activation(self.inner(x))))


class ExplicitBlock(nn.Module):
    """Self-attention, optional cross-attention, FFN, each followed by add & norm ``LayerNorm(x + dropout(y))``
    (post-norm, d2l's AddNorm)."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float, activation: str, cross_attention: bool):
        super().__init__()
        self.self_attention = ExplicitMultiHeadAttention(d_model, num_heads, dropout)
        self.self_norm = nn.LayerNorm(d_model)
        self.cross_attention = ExplicitMultiHeadAttention(d_model, num_heads, dropout) if cross_attention else None
        self.cross_norm = nn.LayerNorm(d_model) if cross_attention else None
        self.feed_forward = FeedForward(d_model, d_ff, activation, dropout)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, valid_lens: Tensor | None, memory: Tensor | None = None, memory_lens: Tensor | None = None) -> Tensor:
        x = self.self_norm(x + self.dropout(self.self_attention(x, x, x, valid_lens)))
        if self.cross_attention is not None:
            x = self.cross_norm(x + self.dropout(self.cross_attention(x, memory, memory, memory_lens)))
        return self.ffn_norm(x + self.dropout(self.feed_forward(x)))


class ExplicitStack(nn.Module):
    def __init__(self, num_layers: int, d_model: int, num_heads: int, d_ff: int, dropout: float, activation: str,
                 cross_attention: bool = False):
        super().__init__()
        self.blocks = nn.ModuleList(
            ExplicitBlock(d_model, num_heads, d_ff, dropout, activation, cross_attention) for _ in range(num_layers)
        )

    def forward(self, x: Tensor, valid_lens: Tensor | None, memory: Tensor | None = None, memory_lens: Tensor | None = None) -> Tensor:
        for block in self.blocks:
            x = block(x, valid_lens, memory, memory_lens)
        return x


def sinusoids(max_len: int, d_model: int) -> Tensor:
    """``P[t, 2i] = sin(t / 10000^(2i/D))``, ``P[t, 2i+1] = cos(t / 10000^(2i/D))`` (Vaswani et al., sec. 3.5)."""
    position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)  # (T, 1)
    frequency = torch.pow(10000.0, -torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)  # (D/2,)
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : d_model // 2]
    return table  # (T, D)

