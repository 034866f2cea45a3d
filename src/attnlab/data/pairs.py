"""Encoded sentence pairs and their collation into padded seq2seq batches (d2l 10.5).

Shape legend: B batch, S source length (tokens + <eos>), T target length (tokens + one of <bos>/<eos>).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from attnlab.data.ragged import ChunkedRagged, RaggedIds

Rows = RaggedIds | ChunkedRagged  # rows of token ids, in memory or over shards


class TranslationBatch(NamedTuple):
    src: Tensor  # (B, S) source ids + <eos>, padded with pad id
    src_lens: Tensor  # (B,) valid source lengths (incl. <eos>)
    tgt_in: Tensor  # (B, T) <bos> y: decoder input under teacher forcing
    tgt_out: Tensor  # (B, T) y <eos>: labels, padded with pad id
    tgt_lens: Tensor  # (B,) valid target lengths (len(y) + 1)
    index: Tensor  # (B,) row of each pair in its split: position in the DataModule's texts(split), corpus order


class PairDataset(Dataset):
    """Encoded (source, target) pairs without specials, served as ``(index, source, target)``; ``collate_pairs``
    adds <bos>/<eos> and pads."""

    def __init__(self, src: Rows, tgt: Rows, lengths: np.ndarray):
        if not len(src) == len(tgt) == len(lengths):
            raise ValueError(f"source has {len(src)} rows, target {len(tgt)}, lengths {len(lengths)}")
        self.src, self.tgt, self._lengths = src, tgt, lengths

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, i: int) -> tuple[int, Tensor, Tensor]:
        return i, self.src[i], self.tgt[i]

    def lengths(self) -> np.ndarray:
        """``(N,)`` bucketing key of each pair, :func:`pair_lengths` (stored with the ids)."""
        return self._lengths


def pair_lengths(src: RaggedIds, tgt: RaggedIds) -> np.ndarray:
    """``(N,)`` int32 longest padded side of each pair (``+ 1`` for <eos> / <bos>): the bucketing key."""
    return (np.maximum(src.lengths(), tgt.lengths()) + 1).astype(np.int32)


def collate_pairs(
    examples: Sequence[tuple[int, Tensor, Tensor]], pad_id: int, bos_id: int, eos_id: int
) -> TranslationBatch:
    """``(index, source ids, target ids)`` examples as one padded batch."""
    src_lens = torch.tensor([len(x) + 1 for _, x, _ in examples])  # (B,)
    tgt_lens = torch.tensor([len(y) + 1 for _, _, y in examples])  # (B,)
    batch = len(examples)
    src = torch.full((batch, int(src_lens.max())), pad_id, dtype=torch.long)  # (B, S)
    tgt_in = torch.full((batch, int(tgt_lens.max())), pad_id, dtype=torch.long)  # (B, T)
    tgt_out = tgt_in.clone()  # (B, T)
    for row, (_, x, y) in enumerate(examples):
        src[row, : len(x)] = x
        src[row, len(x)] = eos_id
        tgt_in[row, 0] = bos_id
        tgt_in[row, 1 : len(y) + 1] = y
        tgt_out[row, : len(y)] = y
        tgt_out[row, len(y)] = eos_id
    index = torch.tensor([i for i, _, _ in examples], dtype=torch.long)  # (B,)
    return TranslationBatch(src, src_lens, tgt_in, tgt_out, tgt_lens, index)
