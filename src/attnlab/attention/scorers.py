"""Attention scoring functions: ``scorer(queries, keys) -> scores``.

Every scorer is built as ``Scorer(query_dim, key_dim)`` and maps queries ``(..., Tq, dq)`` and keys
``(..., Tk, dk)`` to scores ``(..., Tq, Tk)``; leading dims (batch, heads) broadcast. d2l 11.3.
"""
from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import Tensor, nn


class Scorer(Protocol):
    """The contract of every scorer: built as ``Scorer(query_dim, key_dim)``, called on queries (..., Tq, dq)
    and keys (..., Tk, dk), returns scores (..., Tq, Tk)."""

    def __call__(self, queries: Tensor, keys: Tensor) -> Tensor: ...


class DotProductScorer(nn.Module):
    """``q . k`` (Luong et al., 2015, "dot"). Needs ``dq == dk``.

    ``fused=True`` lets multi-head attention run torch's fused SDPA kernel; ``False`` keeps the explicit
    matmul + masked softmax (faster for bf16 training on CPUs, whose fused bf16 backward is slow).
    """

    def __init__(self, query_dim: int, key_dim: int, *, fused: bool = True):
        super().__init__()
        if query_dim != key_dim:
            raise ValueError(
                f"{type(self).__name__} needs equal query and key sizes, got query_dim={query_dim}, "
                f"key_dim={key_dim}; use attention=additive or attention=general for unequal sizes"
            )
        self.scale = 1.0  # multiplies q . k; read by the fused path
        self.fused = fused

    def forward(self, queries: Tensor, keys: Tensor) -> Tensor:
        return torch.matmul(queries, keys.transpose(-2, -1)) * self.scale  # (..., Tq, Tk)


class ScaledDotProductScorer(DotProductScorer):
    """``q . k / sqrt(d)`` (Vaswani et al., 2017, eq. 1)."""

    def __init__(self, query_dim: int, key_dim: int, *, fused: bool = True):
        super().__init__(query_dim, key_dim, fused=fused)
        self.scale = 1.0 / math.sqrt(key_dim)


class AdditiveScorer(nn.Module):
    """``w_v . tanh(W_q q + W_k k)`` (Bahdanau et al., 2015); works for any ``dq``, ``dk``."""

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int | None = None):
        super().__init__()
        hidden_dim = hidden_dim or key_dim
        self.query_proj = nn.Linear(query_dim, hidden_dim, bias=False)
        self.key_proj = nn.Linear(key_dim, hidden_dim, bias=False)
        self.score_proj = nn.Linear(hidden_dim, 1, bias=False)

    def forward(self, queries: Tensor, keys: Tensor) -> Tensor:
        features = self.query_proj(queries).unsqueeze(-2) + self.key_proj(keys).unsqueeze(-3)  # (..., Tq, Tk, h)
        return self.score_proj(torch.tanh(features)).squeeze(-1)  # (..., Tq, Tk)


class GeneralScorer(nn.Module):
    """Bilinear ``q^T W k`` (Luong et al., 2015, "general"); works for any ``dq``, ``dk``."""

    def __init__(self, query_dim: int, key_dim: int):
        super().__init__()
        self.key_proj = nn.Linear(key_dim, query_dim, bias=False)  # W k lands in query space

    def forward(self, queries: Tensor, keys: Tensor) -> Tensor:
        return torch.matmul(queries, self.key_proj(keys).transpose(-2, -1))  # (..., Tq, Tk)
