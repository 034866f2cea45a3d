"""Pure masking and softmax functions shared by every attention model.

Shape legend: B batch, Tq query length, Tk key length, H heads.
Masks are boolean and ``True`` marks a position that may receive weight.
"""
from __future__ import annotations

import torch
from torch import Tensor


def sequence_mask(valid_lens: Tensor, max_len: int) -> Tensor:
    """``(..., max_len)`` boolean mask, True at positions ``< valid_lens``."""
    positions = torch.arange(max_len, device=valid_lens.device)
    return positions < valid_lens.unsqueeze(-1)  # (..., max_len)


def causal_mask(num_queries: int, num_keys: int | None = None, device=None, offset: int = 0) -> Tensor:
    """``(Tq, Tk)`` mask that lets query ``i`` (at absolute position ``offset + i``) see keys ``<= offset + i``."""
    num_keys = num_queries + offset if num_keys is None else num_keys
    query_pos = torch.arange(num_queries, device=device).unsqueeze(-1) + offset
    key_pos = torch.arange(num_keys, device=device)
    return key_pos <= query_pos  # (Tq, Tk)


def valid_lens_to_mask(valid_lens: Tensor, scores_shape: torch.Size) -> Tensor:
    """Expand valid lengths of shape ``(B,)`` or ``(B, Tq)`` into a mask broadcastable to ``scores_shape``.

    ``scores_shape`` is ``(B, Tq, Tk)`` or ``(B, H, Tq, Tk)``.
    """
    num_queries, num_keys = scores_shape[-2], scores_shape[-1]
    batch = scores_shape[0]
    if valid_lens.dim() == 1:
        if valid_lens.shape[0] != batch:
            raise ValueError(f"valid_lens has batch size {valid_lens.shape[0]}, scores have {batch}")
        mask = sequence_mask(valid_lens, num_keys).unsqueeze(-2)  # (B, 1, Tk)
    elif valid_lens.dim() == 2:
        if tuple(valid_lens.shape) != (batch, num_queries):
            raise ValueError(
                f"valid_lens of shape {tuple(valid_lens.shape)} must be (batch, queries) = {(batch, num_queries)}"
            )
        mask = sequence_mask(valid_lens, num_keys)  # (B, Tq, Tk)
    else:
        raise ValueError(f"valid_lens must have shape (batch,) or (batch, queries), got {tuple(valid_lens.shape)}")
    if len(scores_shape) == 4:
        mask = mask.unsqueeze(1)  # (B, 1, Tq|1, Tk)
    return mask


def masked_softmax(scores: Tensor, valid_lens: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
    """Softmax over the last axis that gives masked keys exactly zero weight.

    ``valid_lens`` ((B,) or (B, Tq)) and ``mask`` (boolean, broadcastable to ``scores``, True = keep) may be
    combined. A row with no valid key returns all zeros rather than NaN (d2l fills with -1e6 and so spreads
    uniform weight over padding instead).
    """
    keep = None
    if valid_lens is not None:
        keep = valid_lens_to_mask(valid_lens, scores.shape)
    if mask is not None:
        if mask.dtype != torch.bool:
            raise ValueError(f"mask must be boolean (True = attend), got dtype {mask.dtype}")
        keep = mask if keep is None else keep & mask
    if keep is None:
        return torch.softmax(scores, dim=-1)
    filled = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
    weights = torch.softmax(filled, dim=-1)
    return weights.masked_fill(~keep, 0.0)  # fully masked rows: zeros, not a uniform spread
