"""Nadaraya-Watson kernels as attention scorers over scalar inputs (d2l 11.2).

A kernel ``K(u)``, ``u = (x_query - x_key) / bandwidth``, becomes the score ``log K(u)`` together with a
support mask ``K(u) > 0``; ``masked_softmax`` then yields exactly ``K / sum K`` and zero weight outside
the support. Every kernel is built as ``Kernel(bandwidth)`` and maps queries ``(B, Tq)`` and keys
``(B, Tk)`` to ``KernelScores(scores, support)`` of shape ``(B, Tq, Tk)``.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn



class KernelScores(NamedTuple):
    scores: Tensor  # (B, Tq, Tk) log K(u) on the support
    support: Tensor  # (B, Tq, Tk) bool, K(u) > 0


class _Kernel(nn.Module):
    def __init__(self, bandwidth: float = 1.0):
        super().__init__()
        if bandwidth <= 0:
            raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
        self.bandwidth = bandwidth

    def scaled_distance(self, queries: Tensor, keys: Tensor) -> Tensor:
        return (queries.unsqueeze(-1) - keys.unsqueeze(-2)) / self.bandwidth  # (B, Tq, Tk)


class GaussianKernel(_Kernel):
    """``K(u) = exp(-u^2 / 2)``."""

    def forward(self, queries: Tensor, keys: Tensor) -> KernelScores:
        u = self.scaled_distance(queries, keys)
        return KernelScores(-0.5 * u**2, torch.ones_like(u, dtype=torch.bool))


class BoxcarKernel(_Kernel):
    """``K(u) = 1`` for ``|u| <= 1``, else 0."""

    def forward(self, queries: Tensor, keys: Tensor) -> KernelScores:
        u = self.scaled_distance(queries, keys)
        return KernelScores(torch.zeros_like(u), u.abs() <= 1.0)


class ConstantKernel(_Kernel):
    """``K(u) = 1``: every prediction is the mean of the training targets."""

    def forward(self, queries: Tensor, keys: Tensor) -> KernelScores:
        u = self.scaled_distance(queries, keys)
        return KernelScores(torch.zeros_like(u), torch.ones_like(u, dtype=torch.bool))


class EpanechnikovKernel(_Kernel):
    """``K(u) = 3/4 (1 - u^2)`` for ``|u| < 1``, else 0 (Epanechnikov, 1969)."""

    def forward(self, queries: Tensor, keys: Tensor) -> KernelScores:
        u = self.scaled_distance(queries, keys)
        support = u.abs() < 1.0
        kernel = 0.75 * (1.0 - u**2)
        return KernelScores(torch.log(kernel.clamp_min(torch.finfo(u.dtype).tiny)), support)


class LearnedGaussianKernel(nn.Module):
    """d2l's parametric kernel ``K = exp(-((x_q - x_k) w)^2 / 2)`` with a learnable width ``w``."""

    def __init__(self, init_w: float = 1.0):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(float(init_w)))

    def forward(self, queries: Tensor, keys: Tensor) -> KernelScores:
        u = (queries.unsqueeze(-1) - keys.unsqueeze(-2)) * self.w  # (B, Tq, Tk)
        return KernelScores(-0.5 * u**2, torch.ones_like(u, dtype=torch.bool))


