"""Positional encodings: subclasses of :class:`PositionalEncoding`, all built as ``Encoding(d_model, num_heads,
max_len)``.

Each has two hooks: ``forward(x, offset)`` adds position information to embeddings (B, T, D), and
``rotate(x, offset)`` turns per-head queries/keys (B, H, T, Dh); each is the identity where it does not apply.
``offset`` is the absolute position of the first element (incremental decoding).
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn


def sinusoid_table(max_len: int, dim: int) -> Tensor:
    """``P[t, 2i] = sin(t / 10000^(2i/d))``, ``P[t, 2i+1] = cos(...)`` (Vaswani et al., 2017, sec. 3.5)."""
    positions = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)  # (T, 1)
    inverse_freq = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    angles = positions * inverse_freq  # (T, ceil(D/2))
    table = torch.zeros(max_len, dim)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles[:, : dim // 2])
    return table  # (T, D)


class PositionalEncoding(nn.Module):
    """The common base: the constructor every encoding shares and both hooks, each the identity until a
    subclass overrides the one it uses (added encodings ``forward``, rotary ``rotate``)."""

    def __init__(self, d_model: int, num_heads: int = 1, max_len: int = 1024):
        super().__init__()

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        return x  # (B, T, D)

    def rotate(self, x: Tensor, offset: int = 0) -> Tensor:
        return x  # (B, H, T, Dh)


PositionalEncodingFactory = Callable[[int, int, int], PositionalEncoding]  # encoding(d_model, num_heads, max_len)


class NoPositionalEncoding(PositionalEncoding):
    """No position information: the model sees a bag of tokens (an ablation baseline)."""


class SinusoidalPositionalEncoding(PositionalEncoding):
    """Fixed sinusoids added to the embeddings; extends itself past ``max_len``."""

    def __init__(self, d_model: int, num_heads: int = 1, max_len: int = 1024):
        super().__init__(d_model, num_heads, max_len)
        self.register_buffer("table", sinusoid_table(max_len, d_model), persistent=False)  # (T, D)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        end = offset + x.shape[1]
        if end > self.table.shape[0]:
            self.table = sinusoid_table(2 * end, self.table.shape[1]).to(self.table.device)
        return x + self.table[offset:end].to(x.dtype)


class LearnedPositionalEncoding(PositionalEncoding):
    """A trained embedding per position (BERT); positions past ``max_len`` are an error."""

    def __init__(self, d_model: int, num_heads: int = 1, max_len: int = 1024):
        super().__init__(d_model, num_heads, max_len)
        self.max_len = max_len
        self.embedding = nn.Embedding(max_len, d_model)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        end = offset + x.shape[1]
        if end > self.max_len:
            raise ValueError(
                f"sequence reaches position {end} but the learned positional encoding has max_len={self.max_len}; "
                f"raise the model's max_len or truncate the input"
            )
        positions = torch.arange(offset, end, device=x.device)
        return x + self.embedding(positions)  # (B, T, D)


class RotaryPositionalEncoding(PositionalEncoding):
    """RoPE (Su et al., 2021): rotates query/key feature pairs by position-dependent angles."""

    def __init__(self, d_model: int, num_heads: int = 1, max_len: int = 1024, base: float = 10000.0):
        super().__init__(d_model, num_heads, max_len)
        head_dim = d_model // num_heads
        if head_dim % 2:
            raise ValueError(f"rotary encoding needs an even head dim, got d_model={d_model} / num_heads={num_heads}")
        self.base = base
        self.head_dim = head_dim
        self._build(max_len)

    def _build(self, length: int) -> None:
        inverse_freq = self.base ** (-torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim)
        angles = torch.arange(length, dtype=torch.float32).unsqueeze(1) * inverse_freq  # (T, Dh/2)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def rotate(self, x: Tensor, offset: int = 0) -> Tensor:
        end = offset + x.shape[-2]
        if end > self.cos.shape[0]:
            device = self.cos.device
            self._build(2 * end)
            self.cos, self.sin = self.cos.to(device), self.sin.to(device)
        cos = self.cos[offset:end].to(x.dtype)  # (T, Dh/2)
        sin = self.sin[offset:end].to(x.dtype)
        even, odd = x[..., 0::2], x[..., 1::2]  # (B, H, T, Dh/2) each
        rotated = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1)  # (B, H, T, Dh/2, 2)
        return rotated.flatten(-2)  # (B, H, T, Dh)
