"""Normalisation layers, all built as ``Norm(d_model)`` and called as ``norm(x, mask)``.

``x`` is (B, T, D); ``mask`` (B, T) marks real tokens (True) and matters only to batch norm, whose
statistics must not count padding.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class LayerNorm(nn.LayerNorm):
    """Ba et al. (2016); per-token, so padding cannot leak into it."""

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return super().forward(x)


class RMSNorm(nn.RMSNorm):
    """Zhang & Sennrich (2019): rescale by the root mean square, no centring, no bias."""

    def __init__(self, normalized_shape: int, eps: float = 1e-6):
        super().__init__(normalized_shape, eps=eps)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return super().forward(x)


class MaskedBatchNorm(nn.Module):
    """Batch norm per feature over batch x time (Ioffe & Szegedy, 2015), counting real tokens only."""

    def __init__(self, normalized_shape: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape))
        self.register_buffer("running_mean", torch.zeros(normalized_shape))
        self.register_buffer("running_var", torch.ones(normalized_shape))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if self.training:
            tokens = x.reshape(-1, x.shape[-1]) if mask is None else x[mask]  # (N_real, D)
            if tokens.shape[0] < 2:
                raise ValueError(f"batch norm needs at least 2 real tokens per batch, got {tokens.shape[0]}")
            mean = tokens.mean(0)
            var = tokens.var(0, unbiased=False)
            with torch.no_grad():
                unbiased = var * tokens.shape[0] / (tokens.shape[0] - 1)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), self.momentum)
                self.running_var.lerp_(unbiased.detach().to(self.running_var.dtype), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias
