"""Multi-head attention with key-padding and causal masks, a key/value cache and a fused fast path.

Shape legend: B batch, Tq/Tk query/key length, D model dim, H heads, Dh = D / H head dim.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnlab.attention.attention import AttentionOutput
from attnlab.attention.functional import causal_mask, masked_softmax
from attnlab.attention.scorers import DotProductScorer, Scorer

Rotation = Callable[[Tensor, int], Tensor]  # (B, H, T, Dh), position offset -> (B, H, T, Dh)


@dataclass
class KVCache:
    """Keys and values of past positions for incremental decoding, ``(B, H, T, Dh)`` each.

    A ``static`` cache (cross-attention) is filled once from the encoder memory and then reused.
    """

    keys: Tensor | None = None
    values: Tensor | None = None
    static: bool = False

    @property
    def length(self) -> int:
        return 0 if self.keys is None else self.keys.shape[-2]

    def append(self, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        if self.keys is not None:
            keys = torch.cat([self.keys, keys], dim=-2)  # (B, H, T_past + T_new, Dh)
            values = torch.cat([self.values, values], dim=-2)
        self.keys, self.values = keys, values
        return keys, values

    def reorder(self, batch_indices: Tensor) -> None:
        """Select batch rows (beam search keeps the surviving hypotheses)."""
        if self.keys is not None:
            self.keys = self.keys.index_select(0, batch_indices)
            self.values = self.values.index_select(0, batch_indices)


class MultiHeadAttention(nn.Module):
    """Vaswani et al. (2017) multi-head attention with a per-head scorer built as ``scorer(Dh, Dh)``.

    Dot-product scorers run through ``F.scaled_dot_product_attention`` whenever the weights are not
    requested (unless built with ``fused=False``); any other scorer (additive, general) takes the explicit path.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        scorer: Callable[[int, int], Scorer],
        *,
        dropout: float = 0.0,
        bias: bool = True,
    ):
        super().__init__()
        if num_heads <= 0 or d_model % num_heads != 0:
            raise ValueError(f"num_heads={num_heads} must be positive and divide d_model={d_model}")
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.dropout = dropout
        self.query_proj = nn.Linear(d_model, d_model, bias=bias)
        self.key_proj = nn.Linear(d_model, d_model, bias=bias)
        self.value_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.scorer = scorer(self.head_dim, self.head_dim)
        fusable = isinstance(self.scorer, DotProductScorer) and self.scorer.fused
        self.fused_scale = self.scorer.scale if fusable else None

    def _split_heads(self, x: Tensor) -> Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)

    def _project_self(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One GEMM for Q, K and V when attending to itself."""
        weight = torch.cat([self.query_proj.weight, self.key_proj.weight, self.value_proj.weight])
        bias = None
        if self.query_proj.bias is not None:
            bias = torch.cat([self.query_proj.bias, self.key_proj.bias, self.value_proj.bias])
        return F.linear(x, weight, bias).chunk(3, dim=-1)  # 3 x (B, T, D)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        *,
        key_padding_mask: Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = False,
        rotate: Rotation | None = None,
        cache: KVCache | None = None,
    ) -> AttentionOutput:
        """``query`` (B, Tq, D), ``key``/``value`` (B, Tk, D); ``key_padding_mask`` (B, Tk) True = real token.

        With a cache, ``key``/``value`` hold only the new positions (self-attention) and are appended, or
        are read once into a static cache (cross-attention). ``rotate`` applies rotary positions to Q and K.
        """
        if query.dim() != 3 or key.dim() != 3 or value.dim() != 3:
            raise ValueError(f"expected (B, T, D) inputs, got {tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
        if not (query.shape[0] == key.shape[0] == value.shape[0]):
            raise ValueError(f"batch sizes differ: query {query.shape[0]}, key {key.shape[0]}, value {value.shape[0]}")
        offset = 0 if cache is None or cache.static else cache.length
        if cache is not None and cache.static and cache.keys is not None:
            q, k, v = self._split_heads(self.query_proj(query)), cache.keys, cache.values
        else:
            if query is key and key is value:
                q, k, v = (self._split_heads(t) for t in self._project_self(query))
            else:
                q = self._split_heads(self.query_proj(query))
                k = self._split_heads(self.key_proj(key))
                v = self._split_heads(self.value_proj(value))  # (B, H, Tk, Dh)
            if rotate is not None:
                q, k = rotate(q, offset), rotate(k, offset)
            if cache is not None:
                k, v = cache.append(k, v)  # (B, H, T_past + Tk, Dh)
        fused = self.fused_scale is not None and not need_weights
        mask = self._combine_masks(key_padding_mask, is_causal, fused, q.shape[-2], k.shape[-2], q.device)
        if fused:
            context = F.scaled_dot_product_attention(
                q, k, v,
                attn_mask=mask,
                dropout_p=self.dropout if self.training else 0.0,
                is_causal=is_causal and mask is None,
                scale=self.fused_scale,
            )
            weights = None
        else:
            scores = self.scorer(q, k)  # (B, H, Tq, Tk)
            weights = masked_softmax(scores, mask=mask)
            context = torch.matmul(F.dropout(weights, self.dropout, self.training), v)  # (B, H, Tq, Dh)
        batch, _, num_queries, _ = context.shape
        context = context.transpose(1, 2).reshape(batch, num_queries, -1)  # (B, Tq, D)
        return AttentionOutput(self.out_proj(context), weights)

    @staticmethod
    def _combine_masks(key_padding_mask, is_causal, fused, num_queries, num_keys, device) -> Tensor | None:
        """Boolean mask (B|1, 1, Tq, Tk), True = attend; None when nothing is masked or SDPA's own
        ``is_causal`` covers it (fused path, no padding, square scores)."""
        mask = None
        if key_padding_mask is not None:
            if key_padding_mask.shape[-1] != num_keys:
                raise ValueError(f"key_padding_mask covers {key_padding_mask.shape[-1]} keys, attention has {num_keys}")
            mask = key_padding_mask[:, None, None, :]  # (B, 1, 1, Tk)
        needs_explicit_causal = is_causal and (not fused or mask is not None or num_queries != num_keys)
        if needs_explicit_causal:
            causal = causal_mask(num_queries, num_keys, device=device, offset=num_keys - num_queries)
            mask = causal if mask is None else mask & causal  # (B|1, 1|., Tq, Tk)
        return mask
