"""Variable-length rows of token ids in two flat arrays: the storage of every encoded corpus.

Shape legend: N rows, L ids in all, T columns read per row by a gather.

The arrays may be views of memory-mapped files (Arrow shards, :mod:`attnlab.data.shards`): nothing here copies them
whole. :class:`ChunkedRagged` addresses several such pieces (an Arrow column's record batches) as one.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


def offsets_from_lengths(lengths: np.ndarray) -> np.ndarray:
    """``(N + 1,)`` int64 start offsets of rows of the given lengths, ending with their total."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


@dataclass(frozen=True)
class RaggedIds:
    """Row i is ``ids[offsets[i]:offsets[i + 1]]``."""

    ids: np.ndarray  # (L,) token ids
    offsets: np.ndarray  # (N + 1,) non-decreasing positions in ids (from 0 to L when built here)

    @classmethod
    def from_lists(cls, rows: Sequence[Sequence[int]], dtype: np.dtype | type = np.int32) -> RaggedIds:
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        offsets = offsets_from_lengths(lengths)
        ids = np.fromiter(itertools.chain.from_iterable(rows), dtype=dtype, count=int(offsets[-1]))
        return cls(ids, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> Tensor:
        return torch.from_numpy(self.ids[self.offsets[i] : self.offsets[i + 1]].copy())  # ids may be read-only

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)  # (N,)

    def gather(self, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """``(N, T)`` ids: entry (n, t) is id ``columns[n, t]`` of row ``rows[n]``. Columns past a row's end read
        a neighbour's id or 0 (never out of bounds): the caller masks them."""
        if len(self.ids) == 0:
            return np.zeros(columns.shape, dtype=self.ids.dtype)
        positions = self.offsets[rows][:, None] + columns  # (N, T)
        return self.ids[np.clip(positions, 0, len(self.ids) - 1)]

    def to_lists(self) -> list[list[int]]:
        return [self.ids[start:stop].tolist() for start, stop in zip(self.offsets[:-1], self.offsets[1:])]


class ChunkedRagged:
    """Consecutive :class:`RaggedIds` chunks addressed as one: row i lives in the chunk whose first row is the
    last start <= i. Nothing is concatenated, so chunks that map files stay on disk."""

    def __init__(self, chunks: Sequence[RaggedIds]):
        self.chunks = list(chunks)
        self.starts = offsets_from_lengths(np.fromiter(map(len, self.chunks), np.int64, len(self.chunks)))  # (C+1,)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, i: int) -> Tensor:
        if not 0 <= i < len(self):
            raise IndexError(f"row {i} of {len(self)}")
        chunk = int(np.searchsorted(self.starts, i, side="right")) - 1
        return self.chunks[chunk][i - int(self.starts[chunk])]

    def to_lists(self) -> list[list[int]]:
        return [row for chunk in self.chunks for row in chunk.to_lists()]

    def gather(self, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """:meth:`RaggedIds.gather` over the chunks: the rows are grouped by chunk (one sort of the N rows), and
        each chunk reads its own rows' ids."""
        chunk = np.searchsorted(self.starts, rows, side="right") - 1  # (N,)
        order = np.argsort(chunk, kind="stable")
        bounds = np.searchsorted(chunk[order], np.arange(len(self.chunks) + 1))  # (C + 1,) the chunks' runs in order
        out = np.zeros(columns.shape, dtype=self.chunks[0].ids.dtype if self.chunks else np.int32)
        for c in np.flatnonzero(np.diff(bounds)).tolist():
            picked = order[bounds[c] : bounds[c + 1]]
            out[picked] = self.chunks[c].gather(rows[picked] - self.starts[c], columns[picked])
        return out

    def lengths(self) -> np.ndarray:
        """``(N,)`` int32 row lengths (4 bytes a row: this array is in memory)."""
        out = np.empty(len(self), dtype=np.int32)
        for chunk, start in zip(self.chunks, self.starts.tolist()):
            out[start : start + len(chunk)] = chunk.lengths()
        return out
