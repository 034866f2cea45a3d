"""Nadaraya-Watson kernel regression as attention pooling (d2l 11.2).

``f(x) = sum_i alpha(x, x_i) y_i`` with ``alpha = masked_softmax(log K((x - x_i) / h))``: queries are the
inputs to predict at, keys the training inputs, values the training targets.
Shapes: B batch, Tq queries, Tk keys (training points).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from attnlab.attention.functional import masked_softmax


class RegressionOutput(NamedTuple):
    prediction: Tensor  # (B, Tq)
    weights: Tensor  # (B, Tq, Tk)


class NadarayaWatson(nn.Module):
    """Kernel regression; learnable exactly when the injected kernel has parameters (d2l's ``w``)."""

    def __init__(self, kernel: nn.Module):
        super().__init__()
        self.kernel = kernel

    def forward(self, queries: Tensor, keys: Tensor, values: Tensor, key_mask: Tensor | None = None) -> RegressionOutput:
        """``queries`` (B, Tq), ``keys``/``values`` (B, Tk); ``key_mask`` (B|1, Tq, Tk) True = may attend."""
        if keys.shape != values.shape:
            raise ValueError(f"keys {tuple(keys.shape)} and values {tuple(values.shape)} must have the same shape")
        if queries.shape[0] != keys.shape[0]:
            raise ValueError(f"batch sizes differ: queries {queries.shape[0]}, keys {keys.shape[0]}")
        scores, support = self.kernel(queries, keys)  # (B, Tq, Tk) each
        mask = support if key_mask is None else support & key_mask
        weights = masked_softmax(scores, mask=mask)
        prediction = torch.bmm(weights, values.unsqueeze(-1)).squeeze(-1)  # (B, Tq)
        return RegressionOutput(prediction, weights)
