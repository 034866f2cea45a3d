"""Residual connection with normalisation, placed after (post-norm) or before (pre-norm) the sublayer.

Both placements expose the same two calls: ``sublayer_input(x, mask)`` and ``combine(x, y, mask)``.
"""
from __future__ import annotations

from typing import Callable

from torch import Tensor, nn


class PostNormResidual(nn.Module):
    """``norm(x + dropout(sublayer(x)))``: d2l's AddNorm, the original Transformer and BERT."""

    def __init__(self, norm: nn.Module, dropout: float = 0.0):
        super().__init__()
        self.norm = norm
        self.dropout = nn.Dropout(dropout)

    def sublayer_input(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return x

    def combine(self, x: Tensor, y: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.norm(x + self.dropout(y), mask)

    @staticmethod
    def final_norm(norm_factory: Callable[[int], nn.Module], d_model: int) -> nn.Module:
        """Post-norm stacks end normalised already."""
        return IdentityNorm()


class PreNormResidual(PostNormResidual):
    """``x + dropout(sublayer(norm(x)))`` (Xiong et al., 2020): stabler deep stacks, needs a final norm."""

    def sublayer_input(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.norm(x, mask)

    def combine(self, x: Tensor, y: Tensor, mask: Tensor | None = None) -> Tensor:
        return x + self.dropout(y)

    @staticmethod
    def final_norm(norm_factory: Callable[[int], nn.Module], d_model: int) -> nn.Module:
        return norm_factory(d_model)


class IdentityNorm(nn.Module):
    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return x


PLACEMENTS = {"post": PostNormResidual, "pre": PreNormResidual}


def residual_class(placement: str) -> type[PostNormResidual]:
    if placement not in PLACEMENTS:
        raise ValueError(f"norm placement={placement!r} is not one of {sorted(PLACEMENTS)}")
    return PLACEMENTS[placement]
