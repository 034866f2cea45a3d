"""Batch samplers whose order is a function of ``(seed, epoch)``, so a resumed run sees the same batches.

They need nothing of a dataset but its size and, for bucketing, one length per example: the lengths may come
from an in-memory array or from offsets on disk alike. :class:`EpochDraws` draws the examples themselves anew
every epoch (BERT pretraining's pairs and masks).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler

from attnlab.data.examples import TensorExamples


def rank_world() -> tuple[int, int]:
    """``(rank, world size)`` of this process: torch.distributed's once initialised (Lightning does so before the
    DataModule's ``setup``), else ``(0, 1)``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class SeededPermutation(Sampler[int]):
    """Indices ``0..n-1``, reshuffled each epoch from ``(seed, epoch)``; identity order when ``shuffle=False``.

    Kept as ``BucketBatchSampler.sampler`` so Lightning's per-epoch ``set_epoch`` call reaches it.
    """

    def __init__(self, num_items: int, shuffle: bool, seed: int):
        self.num_items, self.shuffle, self.seed, self.epoch = num_items, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def rng(self, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, stream])

    def order(self) -> np.ndarray:
        """``(n,)`` int32 (4 bytes an item), shuffled in place: the same order as ``rng.permutation(n)``."""
        order = np.arange(self.num_items, dtype=np.int32)
        if self.shuffle:
            self.rng(0).shuffle(order)
        return order

    def __iter__(self):
        return iter(self.order().tolist())

    def __len__(self) -> int:
        return self.num_items


class BucketBatchSampler(Sampler[list[int]]):
    """Length-bucketed batches: sort each chunk of ``bucket_size`` (shuffled) indices by length, cut it into
    batches of ``batch_size`` rows or of at most ``max_tokens`` padded tokens, then shuffle the batch order.

    With ``world_size > 1`` each rank takes every ``world_size``-th batch. With ``equal_shards`` (training) the
    batch list is first padded by cycling so every rank runs the same number of steps (as DistributedSampler
    does); without (evaluation) every example lands on exactly one rank and the ranks may run different numbers
    of batches, which Lightning's validation and test loops allow (metrics synced once an epoch); a batch is split
    where needed so that no rank gets none. Under Lightning this needs ``Trainer(use_distributed_sampler=False)``,
    since the sampler does its own sharding (Lightning raises a TypeError saying so otherwise). With
    ``max_tokens`` the number of batches may differ slightly between epochs; Lightning sizes an epoch from the
    first one.
    """

    def __init__(
        self,
        sampler: SeededPermutation,
        lengths: np.ndarray,
        batch_size: int | None = None,
        max_tokens: int | None = None,
        bucket_size: int = 4096,
        rank: int = 0,
        world_size: int = 1,
        equal_shards: bool = True,
    ):
        if (batch_size is None) == (max_tokens is None):
            raise ValueError(f"give exactly one of batch_size={batch_size} and max_tokens={max_tokens}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} must lie in [0, world_size={world_size})")
        if len(lengths) != len(sampler):
            raise ValueError(f"{len(lengths)} lengths for a sampler over {len(sampler)} items")
        self.sampler, self.lengths = sampler, np.asarray(lengths)
        self.batch_size, self.max_tokens, self.bucket_size = batch_size, max_tokens, bucket_size
        self.rank, self.world_size, self.equal_shards = rank, world_size, equal_shards
        self._cached: tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def _cut(self, chunk: np.ndarray) -> np.ndarray:
        """Batch ends (exclusive, within ``chunk``, which is sorted by length) of this chunk's batches."""
        if self.batch_size is not None:
            return np.append(np.arange(self.batch_size, len(chunk), self.batch_size), len(chunk))
        ends, start, longest = [], 0, 0
        for end, length in enumerate(self.lengths[chunk].tolist()):  # ascending: `longest` is the current length
            longest = max(longest, length)
            if end > start and (end - start + 1) * longest > self.max_tokens:
                ends.append(end)
                start, longest = end, length
        return np.asarray([*ends, len(chunk)], dtype=np.int64)

    def _plan(self) -> tuple[np.ndarray, np.ndarray]:
        """This epoch's examples in bucketed order, ``(N,)`` int32, and the ``(batches + 1,)`` bounds of its
        batches in it: 4 bytes an example whatever the corpus size (no list of index arrays)."""
        plan = self.sampler.order()
        bounds = [np.zeros(1, dtype=np.int64)]
        for start in range(0, len(plan), self.bucket_size):
            chunk = plan[start : start + self.bucket_size]
            chunk[:] = chunk[np.argsort(self.lengths[chunk], kind="stable")]  # sorted in place
            bounds.append(start + self._cut(chunk))
        return plan, np.concatenate(bounds)

    def _rank_batches(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(plan, starts, stops)``: batch k of this rank is ``plan[starts[k]:stops[k]]``."""
        if self._cached is not None and self._cached[0] == self.sampler.epoch:
            return self._cached[1]
        plan, bounds = self._plan()
        starts, stops = bounds[:-1], bounds[1:]
        if self.sampler.shuffle:
            order = self.sampler.rng(1).permutation(len(starts))
            starts, stops = starts[order], stops[order]
        if self.world_size > 1 and len(starts):
            if self.equal_shards:
                total = math.ceil(len(starts) / self.world_size) * self.world_size
                cycled = np.arange(total) % len(starts)
                starts, stops = starts[cycled], stops[cycled]
            else:
                starts, stops = self._at_least_one_per_rank(starts, stops)
            starts, stops = starts[self.rank :: self.world_size], stops[self.rank :: self.world_size]
        self._cached = (self.sampler.epoch, (plan, starts, stops))
        return plan, starts, stops

    def _at_least_one_per_rank(self, starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Halve the largest batch until there is a batch for every rank: a rank without any would skip the
        evaluation loop, and with it the collective calls of the others."""
        spans = list(zip(starts.tolist(), stops.tolist()))
        while len(spans) < self.world_size:
            largest = max(range(len(spans)), key=lambda i: spans[i][1] - spans[i][0])
            start, stop = spans[largest]
            if stop - start < 2:
                raise ValueError(
                    f"{sum(b - a for a, b in spans)} examples cannot be shared by world_size={self.world_size} "
                    "ranks without evaluating one twice; evaluate on fewer devices or on more data"
                )
            middle = start + (stop - start) // 2
            spans[largest : largest + 1] = [(start, middle), (middle, stop)]
        return np.asarray([a for a, _ in spans], dtype=np.int64), np.asarray([b for _, b in spans], dtype=np.int64)

    def __iter__(self):
        plan, starts, stops = self._rank_batches()
        return (plan[start:stop].tolist() for start, stop in zip(starts.tolist(), stops.tolist()))

    def __len__(self) -> int:
        return len(self._rank_batches()[1])


class EpochDraws(Sampler[list[int]]):
    """Batches of examples drawn afresh every epoch: ``draw(epoch, rank, world_size)`` returns the epoch's examples,
    which go into ``dataset`` (the loader's), and this rank's batches of them as index lists. The epoch is the one
    Lightning sets (``set_epoch``; 0 when ``frozen``); the draw happens on first use, before a loader's workers copy
    ``dataset``, so a mid-epoch checkpoint resumes at the next batch of the same list."""

    def __init__(self, draw: Callable[[int, int, int], tuple[NamedTuple, list[list[int]]]], frozen: bool = False):
        self.draw_epoch, self.frozen = draw, frozen
        self.dataset, self.epoch, self.batches, self._drawn = TensorExamples(None), 0, [], None
        self.sampler = self  # Lightning calls set_epoch on a loader's sampler and its batch sampler's sampler

    def set_epoch(self, epoch: int) -> None:
        self.epoch = 0 if self.frozen else epoch

    def draw(self) -> NamedTuple:
        """This epoch's examples, drawn once for this epoch and rank."""
        rank, world_size = rank_world()
        if self._drawn != (self.epoch, rank, world_size):
            self.dataset.examples = self.batches = None  # the last epoch's examples go before the next are drawn
            self.dataset.examples, self.batches = self.draw_epoch(self.epoch, rank, world_size)
            self._drawn = (self.epoch, rank, world_size)
        return self.dataset.examples

    def __iter__(self):
        self.draw()
        return iter(self.batches)

    def __len__(self) -> int:
        self.draw()
        return len(self.batches)
