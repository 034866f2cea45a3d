"""Normalisation layers: every norm is built as ``norm(d_model)`` and called as ``norm(x)`` on ``x`` (B, T, D).

Layer norm and RMS norm are torch's own ``nn.LayerNorm`` and ``nn.RMSNorm`` (``conf/norm/*.yaml`` targets them).
Batch norm is the ablation: its statistics pool over tokens, so padding must stay out of them. A model marks its
real tokens once per forward with ``real_tokens``; :class:`MaskedBatchNorm` reads that mark, so every norm
keeps the one call signature ``norm(x)``.
"""
from __future__ import annotations

from typing import Callable, Protocol

import torch
from torch import Tensor, nn

_REAL_TOKENS: list[Tensor | None] = []  # the marks of the enclosing real_tokens blocks, innermost last


class Norm(Protocol):
    """The contract of every norm: built as ``Norm(d_model)``, maps (..., D) to (..., D)."""

    def __call__(self, x: Tensor) -> Tensor: ...


NormFactory = Callable[[int], Norm]  # norm(d_model), e.g. partial(nn.LayerNorm, eps=1e-5)


class real_tokens:  # lower case, as torch.no_grad: used as ``with real_tokens(mask):``
    """Within the block, norms pooling over tokens count only those where ``mask`` (B, T) is True (None: all).

    A plain stack rather than a ``ContextVar``, so ``torch.compile`` traces it without a graph break; it is read in
    training only, where one forward runs at a time."""

    def __init__(self, mask: Tensor | None):
        self.mask = mask

    def __enter__(self) -> None:
        _REAL_TOKENS.append(self.mask)

    def __exit__(self, *exc_info) -> None:
        _REAL_TOKENS.pop()


class MaskedBatchNorm(nn.Module):
    """Batch norm per feature over batch x time (Ioffe & Szegedy, 2015), counting only the ``real_tokens``."""

    def __init__(self, normalized_shape: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape))
        self.register_buffer("running_mean", torch.zeros(normalized_shape))
        self.register_buffer("running_var", torch.ones(normalized_shape))

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (..., D); in training the statistics pool over the real tokens of the enclosing ``real_tokens``."""
        if self.training:
            mask = _REAL_TOKENS[-1] if _REAL_TOKENS else None
            if mask is not None and mask.shape != x.shape[:-1]:
                raise ValueError(f"real-token mask {tuple(mask.shape)} does not match x {tuple(x.shape)} (..., D)")
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
